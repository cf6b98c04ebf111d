// Affine (uniform integer) quantization of a value range:
//   q = clamp(round(x / scale) + zero_point, qmin, qmax),  x' = scale * (q - zero_point)
// Symmetric schemes have zero_point 0 and signed codes; asymmetric ones use
// codes [0, 2^b - 1] with a zero point that makes 0.0 exactly representable.
// round() is round-half-to-even (the default floating-point rounding mode).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <span>

#include "quant/scheme.h"

namespace qf::quant {

struct CodeRange {
  int32_t qmin;
  int32_t qmax;
};

struct AffineParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  int32_t qmin = 0;
  int32_t qmax = 0;
};

CodeRange int_code_range(int bits, bool symmetric, bool full_range);

// Rounds a positive scale *up* to the nearest value `format` can store, so the
// range the scale was computed for stays covered: the next fp16 at or above it
// (throws when it exceeds the fp16 maximum 65504), or the next power of two at
// or above it, at least 2^-128 so it fits an int8 exponent (throws above
// 2^127: clamping down would leave the range uncovered).
// Values already representable are returned unchanged.
float round_scale(float scale, ScaleFormat format);

// The one rule every quantizer uses to turn a computed scale into a stored
// one: a positive scale is floored at FLT_MIN (smaller would lose precision
// in x / scale; larger still covers the range) and rounded up by round_scale;
// a zero scale (an all-zero range) becomes 1. Throws for a negative, NaN or
// too large scale.
float finish_scale(double scale, ScaleFormat format);

// Parameters covering [lo, hi] (lo <= 0 <= hi is enforced by widening) for the
// integer part of `scheme` (bits, symmetric, full_range, scale_format).
// An all-zero range gets scale 1; a tiny one at least FLT_MIN.
AffineParams affine_params_from_range(float lo, float hi, const Scheme& scheme);

// Round half to even for |v| < 2^22 without a libm call (vectorizes): adding
// and subtracting 1.5 * 2^23 leaves the nearest integer in the current
// (default: to nearest, ties to even) rounding mode. Needs strict float
// semantics: with excess precision or -ffast-math it falls back to nearbyint.
inline float round_half_even(float v) {
#if FLT_EVAL_METHOD == 0 && !defined(__FAST_MATH__)
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
#else
  return std::nearbyint(v);
#endif
}

// round(x / scale) clamped to [lo, hi] (integers), NaN going to lo. Clamping
// before rounding is equivalent for integer bounds and keeps the magic-number
// rounding in range.
inline float round_clamped(float x, float scale, float lo, float hi) {
  float v = x / scale;
  v = v > lo ? v : lo;
  v = v < hi ? v : hi;
  return round_half_even(v);
}

inline int32_t affine_quantize(float x, const AffineParams& p) {
  const float zp = static_cast<float>(p.zero_point);
  const float r = round_clamped(x, p.scale, static_cast<float>(p.qmin) - zp, static_cast<float>(p.qmax) - zp);
  return static_cast<int32_t>(r) + p.zero_point;
}

inline float affine_dequantize(int32_t q, const AffineParams& p) {
  return p.scale * static_cast<float>(q - p.zero_point);
}

// Span forms with exactly the results of the scalar ones, written to
// vectorize. Codes are stored unsigned: code = q + code_bias (code_bias is
// 2^(b-1) for symmetric schemes, 0 for asymmetric), so they must fit a byte.
void affine_quantize_codes(std::span<const float> x, const AffineParams& p, int32_t code_bias,
                           std::span<uint8_t> codes);
void affine_dequantize_codes(std::span<const uint8_t> codes, const AffineParams& p, int32_t code_bias,
                             std::span<float> out);

}  // namespace qf::quant
