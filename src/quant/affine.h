// Affine (uniform integer) quantization of a value range:
//   q = clamp(round(x / scale) + zero_point, qmin, qmax),  x' = scale * (q - zero_point)
// Symmetric schemes have zero_point 0 and signed codes; asymmetric ones use
// codes [0, 2^b - 1] with a zero point that makes 0.0 exactly representable.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

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

// Rounds a positive scale to what `format` can store (fp16, or the next power
// of two at or above it so the range is still covered).
float round_scale(float scale, ScaleFormat format);

// Parameters covering [lo, hi] (lo <= 0 <= hi is enforced by widening) for the
// integer part of `scheme` (bits, symmetric, full_range, scale_format).
AffineParams affine_params_from_range(float lo, float hi, const Scheme& scheme);

inline int32_t affine_quantize(float x, const AffineParams& p) {
  const float q = std::nearbyint(x / p.scale) + static_cast<float>(p.zero_point);
  return static_cast<int32_t>(std::clamp(q, static_cast<float>(p.qmin), static_cast<float>(p.qmax)));
}

inline float affine_dequantize(int32_t q, const AffineParams& p) {
  return p.scale * static_cast<float>(q - p.zero_point);
}

}  // namespace qf::quant
