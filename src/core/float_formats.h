// Conversions between fp32 and the narrow float formats checkpoints use.
// fp32 -> narrow rounds to nearest, ties to even, and keeps NaN a NaN,
// Inf an Inf (where the format has one) and subnormals exact.
#pragma once

#include <cstdint>

namespace qf {

uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);

uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);

// OCP 8-bit floating point (OFP8). E4M3: bias 7, no Inf, NaN = S.1111.111,
// max 448. E5M2: bias 15, IEEE-like with Inf and NaN, max 57344.
// With `saturate`, finite values beyond the range (and Inf for E4M3) map to the
// largest finite magnitude, as the OCP spec's saturating conversion does;
// without it they become NaN (E4M3) or Inf (E5M2). NaN always stays NaN.
uint8_t f32_to_f8e4m3(float x, bool saturate = true);
float f8e4m3_to_f32(uint8_t v);
uint8_t f32_to_f8e5m2(float x, bool saturate = true);
float f8e5m2_to_f32(uint8_t v);

}  // namespace qf
