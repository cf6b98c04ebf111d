#include "runtime/activation_quant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/affine.h"

namespace qf::runtime {

void fake_quantize_activations(const float* x, int64_t rows, int64_t cols, const model::ActivationQuant& aq,
                               float* out) {
  QF_CHECK(aq.mode != model::ActQuantMode::None, "activation quantization requested with mode none");
  QF_CHECK(aq.bits >= 2 && aq.bits <= quant::kMaxRangeIntBits, "activation width {} outside [2, {}]", aq.bits,
           quant::kMaxRangeIntBits);
  if (aq.mode == model::ActQuantMode::DynamicToken) {
    const float qmax = static_cast<float>((1 << (aq.bits - 1)) - 1);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      float amax = 0.0f;
      for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(xr[i]));
      if (amax == 0.0f) {
        std::fill(o, o + cols, 0.0f);
        continue;
      }
      const float scale = amax / qmax, inv = 1.0f / scale;
      for (int64_t i = 0; i < cols; ++i)
        o[i] = std::clamp(quant::round_half_even(xr[i] * inv), -qmax, qmax) * scale;
    }
    return;
  }
  QF_CHECK(std::isfinite(aq.scale) && aq.scale > 0.0f, "static activation scale {} must be positive", aq.scale);
  const quant::CodeRange range = quant::int_code_range(aq.bits, aq.symmetric, false);
  const float lo = static_cast<float>(range.qmin), hi = static_cast<float>(range.qmax);
  const float zp = static_cast<float>(aq.zero_point), inv = 1.0f / aq.scale;
  const int64_t n = rows * cols;
  for (int64_t i = 0; i < n; ++i)
    out[i] = (std::clamp(quant::round_half_even(x[i] * inv) + zp, lo, hi) - zp) * aq.scale;
}

}  // namespace qf::runtime
