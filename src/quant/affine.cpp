#include "quant/affine.h"

#include "core/error.h"
#include "core/float_formats.h"

namespace qf::quant {

CodeRange int_code_range(int bits, bool symmetric, bool full_range) {
  QF_CHECK(bits >= 1 && bits <= 16, "integer width {} out of range", bits);
  if (!symmetric) return {0, (1 << bits) - 1};
  const int32_t half = 1 << (bits - 1);
  return {full_range ? -half : -(half - 1), half - 1};
}

float round_scale(float scale, ScaleFormat format) {
  switch (format) {
    case ScaleFormat::F32: return scale;
    case ScaleFormat::F16: {
      const float s = f16_to_f32(f32_to_f16(scale));
      // fp16 underflow or overflow must not produce a zero/inf scale.
      if (s == 0.0f) return f16_to_f32(0x0001);
      return std::isinf(s) ? 65504.0f : s;
    }
    case ScaleFormat::Pow2: return std::exp2(std::ceil(std::log2(scale)));
  }
  return scale;
}

AffineParams affine_params_from_range(float lo, float hi, const Scheme& scheme) {
  QF_CHECK(std::isfinite(lo) && std::isfinite(hi), "cannot quantize a range with NaN or Inf ({}, {})", lo, hi);
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  const CodeRange r = int_code_range(scheme.bits, scheme.symmetric, scheme.full_range);
  AffineParams p;
  p.qmin = r.qmin;
  p.qmax = r.qmax;
  if (scheme.symmetric) {
    const float amax = std::max(-lo, hi);
    // The full range is centred on -0.5 codes, so it spans 2^b - 1 steps across [-amax, amax].
    const float steps = scheme.full_range ? static_cast<float>(r.qmax - r.qmin) / 2.0f : static_cast<float>(r.qmax);
    p.scale = amax > 0.0f ? amax / steps : 1.0f;
    p.scale = round_scale(p.scale, scheme.scale_format);
    p.zero_point = 0;
  } else {
    const float span = hi - lo;
    p.scale = span > 0.0f ? span / static_cast<float>(r.qmax - r.qmin) : 1.0f;
    p.scale = round_scale(p.scale, scheme.scale_format);
    const float zp = static_cast<float>(r.qmin) - std::nearbyint(lo / p.scale);
    p.zero_point = static_cast<int32_t>(std::clamp(zp, static_cast<float>(r.qmin), static_cast<float>(r.qmax)));
  }
  return p;
}

}  // namespace qf::quant
