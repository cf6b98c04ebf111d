// Internal: the float group scales (or mins) of a two-level row,
//   out[g] = super[g / per] * sub[g],
// the one multiply PackedMatrix's header defines. Kept in an anonymous
// namespace like matmul_simd_common.h: every file gets its own copy, which
// the SIMD files vectorize with their own instruction set.
#pragma once

#include <cstdint>

namespace qf::kernels::detail {
namespace {

// __restrict: int8_t and uint8_t may alias anything, and without it GCC 12
// keeps these loops scalar (a quarter of a Q4_K GEMV's time, measured).
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
