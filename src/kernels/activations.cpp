#include "kernels/activations.h"
#include "kernels/packed_matrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/error.h"
#include "quant/affine.h"

namespace qf::kernels {
namespace {

// Decode prepares four inputs per layer on one thread while the others wait:
// these loops run four floats at a time with SSE2 (every x86-64 CPU has it),
// whose conversion rounds half to even as quant::round_half_even does, so
// both paths give the same codes.

struct RowRange {
  float amax = 0.0f;
  bool finite = true;
};

RowRange abs_max(const float* x, int64_t n) {
  RowRange out;
  int64_t k = 0;
#if defined(__SSE2__)
  const __m128 sign = _mm_set1_ps(-0.0f), largest = _mm_set1_ps(std::numeric_limits<float>::max());
  __m128 amax = _mm_setzero_ps(), finite = _mm_castsi128_ps(_mm_set1_epi32(-1));
  for (; k + 4 <= n; k += 4) {
    const __m128 v = _mm_andnot_ps(sign, _mm_loadu_ps(x + k));
    finite = _mm_and_ps(finite, _mm_cmple_ps(v, largest));  // false for inf and NaN
    amax = _mm_max_ps(amax, v);
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, amax);
  out.amax = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  out.finite = _mm_movemask_ps(finite) == 0xf;
#endif
  for (; k < n; ++k) {
    out.finite = out.finite && std::isfinite(x[k]);
    out.amax = std::max(out.amax, std::fabs(x[k]));
  }
  return out;
}

// q[k] = clamp(round_half_even(x[k] * inv), -127, 127) for finite x.
void quantize_row(const float* x, int64_t n, float inv, int8_t* q) {
  int64_t k = 0;
#if defined(__SSE2__)
  const __m128 scale = _mm_set1_ps(inv);
  const __m128i lo = _mm_set1_epi16(-127);
  for (; k + 16 <= n; k += 16) {
    __m128i c[4];
    for (int i = 0; i < 4; ++i) c[i] = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(x + k + 4 * i), scale));
    // Saturating packs clamp to [-32768, 32767] and then [-128, 127]; -128 is lifted to -127.
    const __m128i w0 = _mm_max_epi16(_mm_packs_epi32(c[0], c[1]), lo), w1 = _mm_max_epi16(_mm_packs_epi32(c[2], c[3]), lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm_packs_epi16(w0, w1));
  }
#endif
  for (; k < n; ++k) q[k] = static_cast<int8_t>(std::clamp(quant::round_half_even(x[k] * inv), -127.0f, 127.0f));
}

}  // namespace

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
    const RowRange range = abs_max(xr, cols);
    // A non-finite input has no int8 code; a NaN scale makes the row's products NaN, as in the fp32 path.
    if (!range.finite) {
      a.scale[m] = std::nanf("");
    } else if (range.amax == 0.0f) {
      a.scale[m] = 0.0f;
    } else {
      // Exactly the arithmetic of runtime/activation_quant.cpp (multiply by the float reciprocal).
      const float scale = range.amax / 127.0f;
      a.scale[m] = scale;
      quantize_row(xr, cols, 1.0f / scale, q);
    }
    for (int64_t b = 0; b < blocks; ++b) {
      int32_t s = 0;
      for (int64_t i = 0; i < kSumBlock; ++i) s += q[b * kSumBlock + i];
      a.block_sums[m * blocks + b] = s;
    }
  }
}

}  // namespace qf::kernels
