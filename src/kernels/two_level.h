// Internal: the float group scales (or mins) of a two-level row,
//   out[g] = super[g / per] * sub[g],
// the one multiply PackedMatrix's header defines: the reference form, used by
// PackedMatrix itself and for super-blocks of other than 8 or 16 groups (the
// kernels' hot cases have explicit vectors: form_row_scales in
// matmul_simd_common.h, form_row_mins in matmul.cpp). Kept in an anonymous
// namespace like matmul_simd_common.h: every file gets its own copy, compiled
// with its own instruction set.
#pragma once

#include <cstdint>

namespace qf::kernels::detail {
namespace {

// __restrict: int8_t and uint8_t may alias anything, and without it GCC 12
// keeps these loops scalar.
template <int Per, typename Sub>
inline void form_two_level_fixed(const Sub* __restrict sub, const float* __restrict super, int64_t groups,
                                 float* __restrict out) {
  int64_t b = 0;
  for (; (b + 1) * Per <= groups; ++b) {
    const float d = super[b];
    // A constant trip count: one or two vector multiplies per super-block.
    for (int i = 0; i < Per; ++i) out[b * Per + i] = d * static_cast<float>(sub[b * Per + i]);
  }
  for (int64_t g = b * Per; g < groups; ++g) out[g] = super[b] * static_cast<float>(sub[g]);
}

template <typename Sub>
inline void form_two_level(const Sub* __restrict sub, const float* __restrict super, int64_t groups, int64_t per,
                           float* __restrict out) {
  if (per == 16) return form_two_level_fixed<16>(sub, super, groups, out);
  if (per == 8) return form_two_level_fixed<8>(sub, super, groups, out);
  for (int64_t g = 0; g < groups; ++g) out[g] = super[g / per] * static_cast<float>(sub[g]);
}

}  // namespace
}  // namespace qf::kernels::detail
