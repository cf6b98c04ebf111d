// Value tables of the non-integer formats. A code decodes to scale * value(code);
// encoding picks the nearest table value of x / scale.
//
//   format    bits  codes -> values (normalized)                      max   ties
//   nf4       4     0..15 -> the QLoRA NormalFloat table, ascending   1     toward zero
//   fp4       4     OCP E2M1 S.EE.M: +-{0,0.5,1,1.5,2,3,4,6}          6     to even (mantissa 0)
//   fp8e4m3   8     OCP E4M3 (core/float_formats), saturating         448   to even
//   fp8e5m2   8     OCP E5M2 (core/float_formats), saturating         57344 to even
//   ternary   2     0 -> -1, 1 -> 0, 2 -> +1 (3 unused, decodes to 0) 1     toward zero
//   binary    1     0 -> -1, 1 -> +1 (0.0 encodes as +1)              1     upward
//
// Scales (choose_codebook_scale): nf4, fp4 and fp8 map the group's absmax onto
// the table's max (no clipping; for fp8 per-tensor this is the usual
// amax/448). Ternary and binary minimize the squared error instead, since an
// absmax scale wastes most of their three/two levels on outliers:
//   ternary  TWN (Li & Liu 2016): threshold 0.7 * mean|w|, scale = mean |w| over
//            the weights above it; then up to 4 Lloyd steps (assign to the
//            nearest of {-s, 0, s}, s = mean |w| of the nonzero ones), each of
//            which can only lower the error
//   binary   XNOR-Net: scale = mean |w| (optimal for sign codes)
// Scales are then rounded up to the scheme's scale format (quant/affine.h).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "quant/scheme.h"

namespace qf::quant {

// The NF4 table of QLoRA (Dettmers et al. 2023), as bitsandbytes ships it.
inline constexpr std::array<float, 16> kNF4Values = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

class Codebook {
 public:
  // The table of a codebook format (not Format::Int); built once, thread-safe.
  static const Codebook& get(Format format);

  Format format() const { return format_; }
  int bits() const { return bits_; }
  float max_abs() const { return max_abs_; }
  // Decoded value of every code (2^bits entries; FP8 NaN codes decode to NaN).
  std::span<const float> values() const { return values_; }
  float value(uint8_t code) const { return values_[code]; }

  // Code of the table value nearest to x (NaN: the FP8 NaN code; for the
  // small tables code 0, the smallest value, or +-0 for fp4).
  uint8_t encode(float x) const;
  // codes[i] = encode(x[i] / scale), vectorized; scale must be > 0.
  void encode(std::span<const float> x, float scale, std::span<uint8_t> codes) const;
  // out[i] = scale * value(codes[i]).
  void decode(std::span<const uint8_t> codes, float scale, std::span<float> out) const;

 private:
  explicit Codebook(Format format);

  Format format_;
  int bits_;
  float max_abs_ = 0.0f;
  std::vector<float> values_;         // by code
  // Small tables: the number of thresholds x exceeds is the rank of its nearest
  // value among the distinct sorted values (of |x| for sign-magnitude fp4),
  // which is also its code (the sign bit added for fp4).
  bool sign_magnitude_ = false;
  std::vector<float> thresholds_;
};

// The (already rounded) scale a codebook scheme uses for a group of finite
// values, as described above. An all-zero group gets scale 1.
float choose_codebook_scale(std::span<const float> values, const Scheme& scheme);

// Scale for the absmax of a range, for clipping searches: max(|lo|, |hi|) maps
// onto the table's max (for ternary/binary too).
float codebook_scale_from_range(float lo, float hi, const Scheme& scheme);

}  // namespace qf::quant
