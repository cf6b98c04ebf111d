#include "kernels/activations.h"
#include "kernels/packed_matrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "quant/affine.h"

namespace qf::kernels {

void prepare_activations(Activations& a, const float* x, int64_t rows, int64_t cols, int64_t ld, bool quantize_int8) {
  QF_CHECK(rows >= 0 && cols >= 1 && ld >= cols, "activations of {} x {} with row stride {}", rows, cols, ld);
  a.rows = rows;
  a.cols = cols;
  a.padded_cols = (cols + kChunk - 1) / kChunk * kChunk;
  const int64_t n = rows * a.padded_cols, blocks = a.blocks();
  a.f32.reserve_discard(static_cast<size_t>(n));
  a.f32_block_sums.resize(static_cast<size_t>(rows * blocks));
  a.quantized = quantize_int8;
  if (quantize_int8) {
    a.q.reserve_discard(static_cast<size_t>(n));
    a.scale.resize(static_cast<size_t>(rows));
    a.block_sums.resize(static_cast<size_t>(rows * blocks));
  }

  for (int64_t m = 0; m < rows; ++m) {
    const float* xr = x + m * ld;
    float* f = a.f32.data() + m * a.padded_cols;
    std::memcpy(f, xr, static_cast<size_t>(cols) * sizeof(float));
    std::fill(f + cols, f + a.padded_cols, 0.0f);  // buffers are reused: padding must be rewritten
    for (int64_t b = 0; b < blocks; ++b) {
      float s = 0.0f;
      for (int64_t i = 0; i < kSumBlock; ++i) s += f[b * kSumBlock + i];
      a.f32_block_sums[m * blocks + b] = s;
    }
    if (!quantize_int8) continue;

    int8_t* q = a.q.data() + m * a.padded_cols;
    std::fill(q, q + a.padded_cols, int8_t{0});
    float amax = 0.0f;
    bool finite = true;
    for (int64_t k = 0; k < cols; ++k) {
      finite = finite && std::isfinite(xr[k]);
      amax = std::max(amax, std::fabs(xr[k]));
    }
    // A non-finite input has no int8 code; a NaN scale makes the row's products NaN, as in the fp32 path.
    if (!finite) {
      a.scale[m] = std::nanf("");
    } else if (amax == 0.0f) {
      a.scale[m] = 0.0f;
    } else {
      // Exactly the arithmetic of runtime/activation_quant.cpp (multiply by the float reciprocal).
      const float scale = amax / 127.0f, inv = 1.0f / scale;
      a.scale[m] = scale;
      for (int64_t k = 0; k < cols; ++k)
        q[k] = static_cast<int8_t>(std::clamp(quant::round_half_even(xr[k] * inv), -127.0f, 127.0f));
    }
    for (int64_t b = 0; b < blocks; ++b) {
      int32_t s = 0;
      for (int64_t i = 0; i < kSumBlock; ++i) s += q[b * kSumBlock + i];
      a.block_sums[m * blocks + b] = s;
    }
  }
}

}  // namespace qf::kernels
