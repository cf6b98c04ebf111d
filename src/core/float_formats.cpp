#include "core/float_formats.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace qf {
namespace {

// Generic round-to-nearest-even encoder for a small IEEE-style format with
// `exp_bits` exponent bits and `man_bits` mantissa bits, operating on the
// magnitude only. `max_finite_code` is the largest finite magnitude code;
// `overflow_code` is what an out-of-range value becomes when not saturating.
uint32_t encode_magnitude(float ax, int exp_bits, int man_bits, uint32_t max_finite_code,
                          uint32_t overflow_code, bool saturate) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const uint32_t bits = std::bit_cast<uint32_t>(ax);
  const int e32 = static_cast<int>((bits >> 23) & 0xFF);
  if (e32 == 0) return 0;  // fp32 zero or subnormal: far below any narrow subnormal
  const int exp = e32 - 127;
  uint32_t mant = (bits & 0x7FFFFF) | 0x800000;  // 24-bit significand with hidden one
  // Unbiased exponent of the smallest normal in the narrow format is 1 - bias.
  int shift;           // right shift of the 24-bit significand to man_bits (+1 hidden)
  uint32_t exp_field;  // biased exponent field before rounding
  if (exp >= 1 - bias) {
    shift = 23 - man_bits;
    exp_field = static_cast<uint32_t>(exp + bias);
  } else {
    shift = 23 - man_bits + (1 - bias - exp);
    exp_field = 0;
  }
  if (shift > 31) return 0;
  uint32_t kept = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (kept & 1))) kept += 1;
  uint32_t code;
  if (exp_field == 0) {
    code = kept;  // subnormal; a carry into bit man_bits naturally makes it the smallest normal
  } else {
    // kept includes the hidden bit at position man_bits; a carry may bump it to man_bits+1
    if (kept >> (man_bits + 1)) {
      kept >>= 1;
      exp_field += 1;
    }
    code = (exp_field << man_bits) | (kept & ((1u << man_bits) - 1));
  }
  if (code > max_finite_code) return saturate ? max_finite_code : overflow_code;
  return code;
}

float decode_magnitude(uint32_t code, int exp_bits, int man_bits) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const uint32_t e = code >> man_bits;
  const uint32_t m = code & ((1u << man_bits) - 1);
  if (e == 0) return std::ldexp(static_cast<float>(m), 1 - bias - man_bits);
  return std::ldexp(static_cast<float>(m | (1u << man_bits)), static_cast<int>(e) - bias - man_bits);
}

}  // namespace

uint16_t f32_to_f16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const float ax = std::fabs(x);
  if (std::isnan(x)) return sign | 0x7E00 | static_cast<uint16_t>((bits >> 13) & 0x1FF);
  if (std::isinf(x)) return sign | 0x7C00;
  return sign | static_cast<uint16_t>(encode_magnitude(ax, 5, 10, 0x7BFF, 0x7C00, false));
}

float f16_to_f32(uint16_t h) {
  const bool neg = h & 0x8000;
  const uint32_t mag = h & 0x7FFF;
  float v;
  if ((mag >> 10) == 0x1F) {
    v = (mag & 0x3FF) ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    v = decode_magnitude(mag, 5, 10);
  }
  return neg ? -v : v;
}

uint16_t f32_to_bf16(float x) {
  uint32_t bits = std::bit_cast<uint32_t>(x);
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x0040);  // keep it quiet NaN
  const uint32_t lsb = (bits >> 16) & 1;
  bits += 0x7FFF + lsb;  // round to nearest even; overflow correctly rounds to Inf
  return static_cast<uint16_t>(bits >> 16);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint8_t f32_to_f8e4m3(float x, bool saturate) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  if (std::isnan(x)) return 0x7F | sign;
  if (std::isinf(x)) return sign | (saturate ? 0x7E : 0x7F);
  // 0x7E = S.1111.110 = 448 is the largest finite; 0x7F is NaN.
  return sign | static_cast<uint8_t>(encode_magnitude(std::fabs(x), 4, 3, 0x7E, 0x7F, saturate));
}

float f8e4m3_to_f32(uint8_t v) {
  const bool neg = v & 0x80;
  const uint32_t mag = v & 0x7F;
  if (mag == 0x7F) return std::numeric_limits<float>::quiet_NaN();
  const float f = decode_magnitude(mag, 4, 3);
  return neg ? -f : f;
}

uint8_t f32_to_f8e5m2(float x, bool saturate) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  if (std::isnan(x)) return 0x7F | sign;
  if (std::isinf(x)) return sign | (saturate ? 0x7B : 0x7C);
  // 0x7B = 57344 is the largest finite; 0x7C is Inf.
  return sign | static_cast<uint8_t>(encode_magnitude(std::fabs(x), 5, 2, 0x7B, 0x7C, saturate));
}

float f8e5m2_to_f32(uint8_t v) {
  const bool neg = v & 0x80;
  const uint32_t mag = v & 0x7F;
  float f;
  if ((mag >> 2) == 0x1F) {
    f = (mag & 3) ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    f = decode_magnitude(mag, 5, 2);
  }
  return neg ? -f : f;
}

}  // namespace qf
