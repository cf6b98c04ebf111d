#include "quant/affine.h"

#include <algorithm>

#include "core/error.h"
#include "core/float_formats.h"

namespace qf::quant {

CodeRange int_code_range(int bits, bool symmetric, bool full_range) {
  QF_CHECK(bits >= kMinIntBits && bits <= kMaxRangeIntBits, "integer width {} is out of range [{}, {}]", bits,
           kMinIntBits, kMaxRangeIntBits);
  if (!symmetric) return {0, (1 << bits) - 1};
  const int32_t half = 1 << (bits - 1);
  return {full_range ? -half : -(half - 1), half - 1};
}

float round_scale(float scale, ScaleFormat format) {
  QF_CHECK(std::isfinite(scale) && scale > 0.0f, "scale {} is not a positive finite number", scale);
  switch (format) {
    case ScaleFormat::F32: return scale;
    case ScaleFormat::F16: {
      uint16_t h = f32_to_f16(scale);  // nearest; step up once if that was below
      if (f16_to_f32(h) < scale) ++h;  // positive fp16 codes are ordered like their values
      const float s = f16_to_f32(h);
      QF_CHECK(std::isfinite(s), "scale {} exceeds the fp16 range (max 65504); use f32scale", scale);
      return s;
    }
    case ScaleFormat::Pow2: {
      int exp = 0;
      const float mant = std::frexp(scale, &exp);  // scale = mant * 2^exp, mant in [0.5, 1)
      if (mant == 0.5f) exp -= 1;                  // already a power of two
      QF_CHECK(exp <= 127, "scale {} exceeds the power-of-two scale range (max 2^127); use f32scale", scale);
      return std::ldexp(1.0f, std::max(exp, -128));
    }
  }
  fail("invalid scale format value {}", static_cast<int>(format));
}

float finish_scale(double scale, ScaleFormat format) {
  QF_CHECK(scale >= 0.0, "scale {} is not a non-negative number", scale);
  if (scale == 0.0) return round_scale(1.0f, format);
  return round_scale(std::max(static_cast<float>(scale), FLT_MIN), format);
}

AffineParams affine_params_from_range(float lo, float hi, const Scheme& scheme) {
  QF_CHECK(std::isfinite(lo) && std::isfinite(hi), "cannot quantize a range with NaN or Inf ({}, {})", lo, hi);
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  const CodeRange r = int_code_range(scheme.bits, scheme.symmetric, scheme.full_range);
  AffineParams p;
  p.qmin = r.qmin;
  p.qmax = r.qmax;
  auto finish = [&](float scale) { return finish_scale(scale, scheme.scale_format); };
  if (scheme.symmetric) {
    const float amax = std::max(-lo, hi);
    // The full range is centred on -0.5 codes, so it spans 2^b - 1 steps across [-amax, amax].
    const float steps = scheme.full_range ? static_cast<float>(r.qmax - r.qmin) / 2.0f : static_cast<float>(r.qmax);
    p.scale = finish(amax / steps);
    p.zero_point = 0;
  } else {
    // hi - lo may overflow to Inf for huge ranges; halve first.
    const float span = (hi * 0.5f - lo * 0.5f) / static_cast<float>(r.qmax - r.qmin) * 2.0f;
    p.scale = finish(span);
    const float zp = static_cast<float>(r.qmin) - std::nearbyint(lo / p.scale);
    p.zero_point = static_cast<int32_t>(std::clamp(zp, static_cast<float>(r.qmin), static_cast<float>(r.qmax)));
  }
  return p;
}

void affine_quantize_codes(std::span<const float> x, const AffineParams& p, int32_t code_bias,
                           std::span<uint8_t> codes) {
  QF_CHECK(codes.size() >= x.size(), "code buffer of {} for {} values", codes.size(), x.size());
  QF_CHECK(p.qmin + code_bias >= 0 && p.qmax + code_bias <= 255, "codes [{}, {}] + {} do not fit a byte", p.qmin,
           p.qmax, code_bias);
  const float zp = static_cast<float>(p.zero_point);
  const float lo = static_cast<float>(p.qmin) - zp;
  const float hi = static_cast<float>(p.qmax) - zp;
  const int32_t offset = p.zero_point + code_bias;
  const float scale = p.scale;
  const float* in = x.data();
  uint8_t* out = codes.data();
  const size_t n = x.size();
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(round_clamped(in[i], scale, lo, hi)) + offset);
  }
}

void affine_dequantize_codes(std::span<const uint8_t> codes, const AffineParams& p, int32_t code_bias,
                             std::span<float> out) {
  QF_CHECK(out.size() >= codes.size(), "output of {} for {} codes", out.size(), codes.size());
  // scale * (code - bias - zp): the difference is a small integer, exact in float.
  const float offset = static_cast<float>(p.zero_point + code_bias);
  const float scale = p.scale;
  const uint8_t* in = codes.data();
  float* o = out.data();
  const size_t n = codes.size();
  for (size_t i = 0; i < n; ++i) o[i] = scale * (static_cast<float>(in[i]) - offset);
}

}  // namespace qf::quant
