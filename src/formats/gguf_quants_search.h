// The scale (and min) searches ggml's block encoders are built from, shared
// by the legacy and the K-quant encoders (internal to src/formats).
// Names of the ggml-quants.c functions each follows are given, so the two
// can be compared; the code is written from their published description.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>

#include "core/float_formats.h"

namespace qf::formats::gguf_detail {

// Below this, ggml treats a group as all zero (GROUP_MAX_EPS).
inline constexpr float kGroupEps = 1e-15f;

// ggml's nearest_int: round half to even (the FPU's default mode).
inline int nearest(float x) { return static_cast<int>(std::nearbyint(x)); }

inline void put_f16(std::byte* p, float x) {
  const uint16_t h = f32_to_f16(x);
  std::memcpy(p, &h, 2);
}
inline float get_f16(const std::byte* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
// The value an fp16 field will hold (what decoders will see).
inline float as_f16(float x) { return f16_to_f32(f32_to_f16(x)); }

// Symmetric scale search (make_qx_quants, rmse_type 1): codes l in
// [-nmax, nmax-1] around the signed value of largest magnitude, then the
// least-squares scale of 19 trial grids, keeping the one with the smallest
// weighted error. `w` empty: weights x^2. Writes l + nmax to `codes`;
// returns the scale (0 for an all-zero group).
float search_symmetric(std::span<const float> x, int nmax, std::span<const float> w, std::span<int8_t> codes);

// Symmetric 3-bit-style search with coordinate refinement (make_q3_quants
// with do_rmse, weights x^2). Writes l + nmax to `codes`.
float search_symmetric_refined(std::span<const float> x, int nmax, std::span<int8_t> codes);

// Asymmetric scale/min search (make_qkx2_quants / make_qkx3_quants):
// x ~ scale * l - min with l in [0, nmax], min >= 0, minimizing the
// w-weighted squared (or absolute, `use_mad`) error over nstep + 1 trial
// grids (rmin + rdelta * i). Writes l to `codes`, the min to `min_out`;
// returns the scale.
float search_scale_min(std::span<const float> x, int nmax, std::span<const float> w, std::span<uint8_t> codes,
                       float* min_out, float rmin, float rdelta, int nstep, bool use_mad);

// Positive scales of the sub-blocks, quantized to l in [0, nmax] with a
// weighted search and refinement (make_qp_quants). Returns the super-block scale.
float search_positive(std::span<const float> x, int nmax, std::span<const float> w, std::span<uint8_t> codes);

}  // namespace qf::formats::gguf_detail
