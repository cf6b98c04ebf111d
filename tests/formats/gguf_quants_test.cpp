// GGUF block types: hand-built blocks from the published ggml-common.h
// layouts decode to known values; values on a type's grid survive
// encode/decode exactly; Q8_0 and Q4_0 encode byte for byte as a plain
// re-statement of ggml's reference algorithm; importance weights lower the
// weighted error; malformed input is a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/float_formats.h"
#include "formats/gguf.h"
#include "formats/gguf_quants.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;
using Bytes = std::vector<std::byte>;

constexpr GgmlType kAll[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                             GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

// An independent fp16 conversion (the compiler's), so the reference below
// does not share our float_formats code.
uint16_t half_bits(float x) {
  const _Float16 h = static_cast<_Float16>(x);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
void put_half(Bytes& b, size_t at, float x) {
  const uint16_t h = half_bits(x);
  std::memcpy(b.data() + at, &h, 2);
}

std::vector<float> decode(GgmlType t, const Bytes& b, size_t n) {
  std::vector<float> out(n);
  gguf_dequantize_row(t, b, out);
  return out;
}
Bytes encode(GgmlType t, const std::vector<float>& x, std::span<const float> w = {}) {
  Bytes out(gguf_row_bytes(t, static_cast<int64_t>(x.size())));
  gguf_quantize_row(t, x, out, w);
  return out;
}

// ---------------------------------------------------------------------------
// Golden blocks

TEST(GgufQuantsGolden, Q4_0) {
  Bytes b(18);
  put_half(b, 0, 0.5f);
  for (int j = 0; j < 16; ++j) b[2 + j] = std::byte(j | ((15 - j) << 4));
  const auto v = decode(GgmlType::Q4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(v[j], (j - 8) * 0.5f) << j;
    EXPECT_EQ(v[j + 16], (7 - j) * 0.5f) << j;
  }
}

TEST(GgufQuantsGolden, Q4_1) {
  Bytes b(20);
  put_half(b, 0, 0.25f);
  put_half(b, 2, -1.0f);
  for (int j = 0; j < 16; ++j) b[4 + j] = std::byte(j | (3 << 4));
  const auto v = decode(GgmlType::Q4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(v[j], j * 0.25f - 1.0f);
    EXPECT_EQ(v[j + 16], 3 * 0.25f - 1.0f);
  }
}

TEST(GgufQuantsGolden, Q5_0) {
  Bytes b(22);
  put_half(b, 0, 1.0f);
  const uint32_t qh = 0x0000FFFFu;  // fifth bit set for elements 0..15
  std::memcpy(b.data() + 2, &qh, 4);
  for (int j = 0; j < 16; ++j) b[6 + j] = std::byte(j | (j << 4));
  const auto v = decode(GgmlType::Q5_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(v[j], static_cast<float>(j));        // (16 + j) - 16
    EXPECT_EQ(v[j + 16], static_cast<float>(j - 16));  // j - 16
  }
}

TEST(GgufQuantsGolden, Q5_1) {
  Bytes b(24);
  put_half(b, 0, 2.0f);
  put_half(b, 2, 0.5f);
  const uint32_t qh = 0xAAAAAAAAu;  // fifth bit set for odd elements
  std::memcpy(b.data() + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) b[8 + j] = std::byte(1 | (2 << 4));
  const auto v = decode(GgmlType::Q5_1, b, 32);
  for (int e = 0; e < 32; ++e) {
    const int q = (e < 16 ? 1 : 2) + (e % 2 ? 16 : 0);
    EXPECT_EQ(v[e], q * 2.0f + 0.5f) << e;
  }
}

TEST(GgufQuantsGolden, Q8_0) {
  Bytes b(34);
  put_half(b, 0, 0.125f);
  for (int j = 0; j < 32; ++j) b[2 + j] = std::byte(static_cast<uint8_t>(static_cast<int8_t>(j * 8 - 128)));
  const auto v = decode(GgmlType::Q8_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(v[j], (j * 8 - 128) * 0.125f);
}

// K-quants: 2-bit fields of element 128h + 32j + l at bits 2j of byte 32h + l.
constexpr uint8_t kCodesByQuarter = 0 | (1 << 2) | (2 << 4) | (3 << 6);  // element's q = j

TEST(GgufQuantsGolden, Q2_K) {
  Bytes b(84);
  for (int s = 0; s < 16; ++s) b[s] = std::byte((s & 0xF) | ((s % 3) << 4));  // scale s, min s % 3
  for (int i = 0; i < 64; ++i) b[16 + i] = std::byte(kCodesByQuarter);
  put_half(b, 80, 1.0f);
  put_half(b, 82, 0.5f);
  const auto v = decode(GgmlType::Q2_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 16, q = (e % 128) / 32;
    EXPECT_EQ(v[e], 1.0f * s * q - 0.5f * (s % 3)) << e;
  }
}

TEST(GgufQuantsGolden, Q3_K) {
  Bytes b(110);
  // hmask: high bit of element e is bit e / 32 of byte e % 32; set for even bytes, bits 0 and 2.
  for (int l = 0; l < 32; ++l) b[l] = std::byte(l % 2 == 0 ? 0x05 : 0x00);
  for (int i = 0; i < 64; ++i) b[32 + i] = std::byte(kCodesByQuarter);
  // Scale s = s (stored s + 32): low nibbles s (bytes 0-7 low: s, high: s + 8), top bits 2 (0b10).
  for (int s = 0; s < 8; ++s) b[96 + s] = std::byte(s | ((s + 8) << 4));
  for (int i = 0; i < 4; ++i) b[104 + i] = std::byte(0xAA);
  put_half(b, 108, 0.25f);
  const auto v = decode(GgmlType::Q3_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const bool high = (e % 32) % 2 == 0 && (e / 32 == 0 || e / 32 == 2);
    const int q = (e % 128) / 32 - (high ? 0 : 4);
    EXPECT_EQ(v[e], 0.25f * (e / 16) * q) << e;
  }
}

// Q4_K/Q5_K scales: sub-block 0-3 scale in bytes 0-3 (low 6 bits), min in
// bytes 4-7; sub-block 4-7: low nibbles in bytes 8-11, top 2 bits in the top
// bits of bytes 0-3 (scale) and 4-7 (min).
void put_scale_min_k(Bytes& b, size_t at) {
  // scale j: 10 + j for j < 4; 48 + j (0b11xxxx) for j >= 4; min j: j, and 16 + j (0b01xxxx) for j >= 4.
  for (int j = 0; j < 4; ++j) {
    b[at + j] = std::byte((10 + j) | (3 << 6));  // top bits = top of scale 4 + j (0b11)
    b[at + 4 + j] = std::byte(j | (1 << 6));     // top bits = top of min 4 + j (0b01)
  }
  for (int j = 4; j < 8; ++j) b[at + 4 + j] = std::byte(((48 + j) & 0xF) | (((16 + j) & 0xF) << 4));
}
int k_scale(int j) { return j < 4 ? 10 + j : 48 + j; }
int k_min(int j) { return j < 4 ? j : 16 + j; }

TEST(GgufQuantsGolden, Q4_K) {
  Bytes b(144);
  put_half(b, 0, 0.5f);
  put_half(b, 2, 0.25f);
  put_scale_min_k(b, 4);
  // Element 64c + l: low nibble of qs[32c + l]; 64c + 32 + l: its high nibble.
  for (int i = 0; i < 128; ++i) b[16 + i] = std::byte((i % 16) | (15 - i % 16) << 4);
  const auto v = decode(GgmlType::Q4_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int l = e % 32, c = e / 64, high = (e % 64) / 32;
    const int q = high ? 15 - (32 * c + l) % 16 : (32 * c + l) % 16;
    EXPECT_EQ(v[e], 0.5f * k_scale(e / 32) * q - 0.25f * k_min(e / 32)) << e;
  }
}

TEST(GgufQuantsGolden, Q5_K) {
  Bytes b(176);
  put_half(b, 0, 0.5f);
  put_half(b, 2, 0.25f);
  put_scale_min_k(b, 4);
  // Fifth bit of element 64c + l (+32): bit 2c (2c + 1) of qh[l]; set for l < 16 only, low halves only.
  for (int l = 0; l < 32; ++l) b[16 + l] = std::byte(l < 16 ? 0x55 : 0x00);
  for (int i = 0; i < 128; ++i) b[48 + i] = std::byte(7 | (9 << 4));
  const auto v = decode(GgmlType::Q5_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const bool high_half = (e % 64) / 32 == 1;
    const int q = (high_half ? 9 : 7) + (!high_half && e % 32 < 16 ? 16 : 0);
    EXPECT_EQ(v[e], 0.5f * k_scale(e / 32) * q - 0.25f * k_min(e / 32)) << e;
  }
}

TEST(GgufQuantsGolden, Q6_K) {
  Bytes b(210);
  // Element 128h + 32k + l: low 4 bits in ql[64h + l + 32 (k & 1)], low
  // nibble for k < 2; top 2 bits at bits 2k of qh[32h + l].
  for (int i = 0; i < 128; ++i) b[i] = std::byte(3 | (12 << 4));  // k = 0, 1 -> 3; k = 2, 3 -> 12
  for (int i = 0; i < 64; ++i) b[128 + i] = std::byte(0 | (1 << 2) | (2 << 4) | (3 << 6));  // top = k
  for (int s = 0; s < 16; ++s) b[192 + s] = std::byte(static_cast<uint8_t>(static_cast<int8_t>(s - 8)));
  put_half(b, 208, 0.5f);
  const auto v = decode(GgmlType::Q6_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int k = (e % 128) / 32;
    const int q = ((k < 2 ? 3 : 12) | (k << 4)) - 32;
    EXPECT_EQ(v[e], 0.5f * (e / 16 - 8) * q) << e;
  }
}

// ---------------------------------------------------------------------------
// Values on the grid survive encode/decode exactly (bytes too where the
// block has one canonical form).

TEST(GgufQuantsRoundTrip, LegacyGridValuesGiveTheSameBlocks) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> q16(0, 15), q32(0, 31), q256(-127, 127);
  for (int trial = 0; trial < 50; ++trial) {
    const float d = std::ldexp(1.0f, trial % 9 - 6);  // powers of two: every step exact
    {  // Q4_0: the value of largest magnitude is -8 d (code 0)
      Bytes b(18);
      put_half(b, 0, d);
      for (int j = 0; j < 16; ++j) b[2 + j] = std::byte(q16(rng) | (q16(rng) << 4));
      b[2] = std::byte(static_cast<uint8_t>(b[2]) & 0xF0);
      const auto x = decode(GgmlType::Q4_0, b, 32);
      EXPECT_EQ(encode(GgmlType::Q4_0, x), b);
    }
    {  // Q5_0 likewise with -16 d
      Bytes b(22);
      put_half(b, 0, d);
      uint32_t qh = static_cast<uint32_t>(rng()) & ~1u;
      std::memcpy(b.data() + 2, &qh, 4);
      for (int j = 0; j < 16; ++j) b[6 + j] = std::byte(q16(rng) | (q16(rng) << 4));
      b[6] = std::byte(static_cast<uint8_t>(b[6]) & 0xF0);
      const auto x = decode(GgmlType::Q5_0, b, 32);
      EXPECT_EQ(encode(GgmlType::Q5_0, x), b);
    }
    {  // Q8_0: some |q| = 127
      Bytes b(34);
      put_half(b, 0, d);
      for (int j = 0; j < 32; ++j) b[2 + j] = std::byte(static_cast<uint8_t>(static_cast<int8_t>(q256(rng))));
      b[2 + trial % 32] = std::byte(static_cast<uint8_t>(trial % 2 ? 127 : -127));
      const auto x = decode(GgmlType::Q8_0, b, 32);
      EXPECT_EQ(encode(GgmlType::Q8_0, x), b);
    }
    {  // Q4_1 / Q5_1: codes 0 and the maximum present, so [min, max] spans the grid
      for (const GgmlType t : {GgmlType::Q4_1, GgmlType::Q5_1}) {
        const int nmax = t == GgmlType::Q4_1 ? 15 : 31;
        std::vector<float> x(32);
        const float m = -d * static_cast<float>(trial % 5);
        for (int j = 0; j < 32; ++j) x[j] = d * static_cast<float>(t == GgmlType::Q4_1 ? q16(rng) : q32(rng)) + m;
        x[3] = m;
        x[17] = d * static_cast<float>(nmax) + m;
        EXPECT_EQ(decode(t, encode(t, x), 32), x) << ggml_type_name(t);
      }
    }
  }
}

// K-quant values built from codes that span each sub-block's range with the
// largest sub-block scale everywhere (what the encoders' searches recover
// exactly: the initial grid already has zero error). Q2_K weighs errors by
// |x|, so its values avoid 0 (a min of 15 * d / 2): a zero of weight 0
// would leave the fit free.
std::vector<float> k_grid_values(GgmlType t, std::mt19937& rng, float d) {
  std::vector<float> x(256);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int s = 0; s < 256; s += 16) {
    for (int i = 0; i < 16; ++i) {
      float v = 0.0f;
      switch (t) {
        case GgmlType::Q2_K: v = d * 15 * static_cast<float>(pick(0, 3)) - d * 7.5f; break;
        case GgmlType::Q3_K: v = d * 32 * static_cast<float>(pick(-3, 3)); break;
        case GgmlType::Q4_K: v = d * 63 * static_cast<float>(pick(0, 15)); break;
        case GgmlType::Q5_K: v = d * 63 * static_cast<float>(pick(0, 31)); break;
        case GgmlType::Q6_K: v = d * 128 * static_cast<float>(pick(-3, 3)); break;
        default: break;
      }
      x[s + i] = v;
    }
    // Both ends of the range in every sub-block (16 and 32 long alike).
    switch (t) {
      case GgmlType::Q2_K: x[s] = -d * 7.5f, x[s + 1] = d * 15 * 3 - d * 7.5f; break;
      case GgmlType::Q3_K: x[s] = -d * 32 * 4; break;
      case GgmlType::Q4_K: x[s] = 0.0f, x[s + 1] = d * 63 * 15; break;
      case GgmlType::Q5_K: x[s] = 0.0f, x[s + 1] = d * 63 * 31; break;
      case GgmlType::Q6_K: x[s] = -d * 128 * 32; break;
      default: break;
    }
  }
  return x;
}

TEST(GgufQuantsRoundTrip, KQuantGridValuesAreExact) {
  std::mt19937 rng(11);
  for (const GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    for (int trial = 0; trial < 20; ++trial) {
      const float d = std::ldexp(1.0f, trial % 7 - 10);
      const auto x = k_grid_values(t, rng, d);
      EXPECT_EQ(decode(t, encode(t, x), 256), x) << ggml_type_name(t) << " trial " << trial;
    }
  }
}

TEST(GgufQuantsRoundTrip, DecodeEncodeDecodeIsStableAndErrorIsSmall) {
  // Real-valued rows: the error is within the type's step, and re-encoding
  // decoded values changes them by at most that step again.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::pair<GgmlType, double> max_rel_rms[] = {
      {GgmlType::Q8_0, 0.01}, {GgmlType::Q6_K, 0.03}, {GgmlType::Q5_K, 0.06}, {GgmlType::Q5_0, 0.08},
      {GgmlType::Q5_1, 0.06}, {GgmlType::Q4_K, 0.12}, {GgmlType::Q4_0, 0.15}, {GgmlType::Q4_1, 0.12},
      {GgmlType::Q3_K, 0.25}, {GgmlType::Q2_K, 0.45}};
  for (const auto& [t, limit] : max_rel_rms) {
    std::vector<float> x(1024);
    for (float& v : x) v = normal(rng);
    const auto y = decode(t, encode(t, x), x.size());
    double err = 0, norm = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      norm += x[i] * x[i];
    }
    EXPECT_LT(std::sqrt(err / norm), limit) << ggml_type_name(t);
    EXPECT_GT(std::sqrt(err / norm), 0.0) << ggml_type_name(t);
  }
}

// ---------------------------------------------------------------------------
// ggml's published reference algorithms, restated plainly.

Bytes reference_q8_0(const std::vector<float>& x) {
  Bytes out;
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t h = half_bits(d);
    out.push_back(std::byte(h & 0xFF));
    out.push_back(std::byte(h >> 8));
    for (size_t j = 0; j < 32; ++j) out.push_back(std::byte(static_cast<uint8_t>(static_cast<int8_t>(roundf(x[b + j] * id)))));
  }
  return out;
}

Bytes reference_q4_0(const std::vector<float>& x) {
  Bytes out;
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0.0f, max = 0.0f;
    for (size_t j = 0; j < 32; ++j)
      if (amax < std::fabs(x[b + j])) {
        amax = std::fabs(x[b + j]);
        max = x[b + j];
      }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t h = half_bits(d);
    out.push_back(std::byte(h & 0xFF));
    out.push_back(std::byte(h >> 8));
    for (size_t j = 0; j < 16; ++j) {
      const float x0 = x[b + j] * id;
      const float x1 = x[b + 16 + j] * id;
      const uint8_t q0 = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(x0 + 8.5f)));
      const uint8_t q1 = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(x1 + 8.5f)));
      out.push_back(std::byte(q0 | (q1 << 4)));
    }
  }
  return out;
}

TEST(GgufQuantsReference, Q8_0AndQ4_0MatchGgmlReferenceByteForByte) {
  std::mt19937 rng(2024);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::student_t_distribution<float> heavy(2.0f);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> x(32 * (1 + trial % 8));
    const float scale = std::ldexp(1.0f, trial % 20 - 10) * (1.0f + 0.37f * static_cast<float>(trial % 3));
    for (float& v : x) v = (trial % 2 ? heavy(rng) : normal(rng)) * scale;
    if (trial % 7 == 0) std::fill(x.begin(), x.begin() + 32, 0.0f);  // an all-zero block
    if (trial % 11 == 0) x[5] = -x[5];
    EXPECT_EQ(encode(GgmlType::Q8_0, x), reference_q8_0(x)) << "trial " << trial;
    EXPECT_EQ(encode(GgmlType::Q4_0, x), reference_q4_0(x)) << "trial " << trial;
  }
}

TEST(GgufQuantsReference, Fp16FieldsRoundToNearestEven) {
  // The scale field is the fp16 nearest d: our f32_to_f16 agrees with the compiler's.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-70000.0f, 70000.0f);
  for (int i = 0; i < 10000; ++i) {
    const float x = u(rng) * std::ldexp(1.0f, -(i % 40));
    EXPECT_EQ(f32_to_f16(x), half_bits(x)) << x;
  }
}

// ---------------------------------------------------------------------------
// Importance weights

TEST(GgufQuantsImportance, WeightsLowerTheWeightedError) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::lognormal_distribution<float> spread(0.0f, 2.0f);
  const int cols = 512, rows = 64;
  std::vector<float> importance(cols);
  for (float& v : importance) v = spread(rng);
  for (const GgmlType t : kAll) {
    if (t == GgmlType::Q8_0) continue;  // ggml has no weighted Q8_0 search
    double plain = 0, weighted = 0;
    for (int r = 0; r < rows; ++r) {
      std::vector<float> x(cols);
      for (float& v : x) v = normal(rng);
      const auto a = decode(t, encode(t, x), cols);
      const auto b = decode(t, encode(t, x, importance), cols);
      for (int i = 0; i < cols; ++i) {
        plain += importance[i] * (x[i] - a[i]) * (x[i] - a[i]);
        weighted += importance[i] * (x[i] - b[i]) * (x[i] - b[i]);
      }
    }
    EXPECT_LT(weighted, 0.97 * plain) << ggml_type_name(t);
  }
}

TEST(GgufQuantsImportance, Q8_0IgnoresWeightsAndUniformWeightsStayClose) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(256), w(256, 1.0f);
  for (float& v : x) v = normal(rng);
  EXPECT_EQ(encode(GgmlType::Q8_0, x, w), encode(GgmlType::Q8_0, x));
}

// ---------------------------------------------------------------------------
// Matrices and malformed input

TEST(GgufQuantsMatrix, MatrixAndTensorApisAgreeWithRows) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(3 * 256);
  for (float& f : v) f = normal(rng);
  const Tensor w = Tensor::from_f32(v, {3, 256});
  for (const GgmlType t : kAll) {
    const Tensor q = gguf_quantize_matrix(t, w);
    ASSERT_EQ(q.shape(), (Shape{3, static_cast<int64_t>(gguf_row_bytes(t, 256))}));
    const auto bytes = std::span<const std::byte>(q.bytes(), q.nbytes());
    EXPECT_EQ(q.nbytes(), ggml_nbytes(t, {3, 256}));
    const Tensor back = gguf_dequantize_tensor(t, bytes, {3, 256});
    for (int r = 0; r < 3; ++r) {
      const std::vector<float> row(v.begin() + r * 256, v.begin() + (r + 1) * 256);
      const Bytes enc = encode(t, row);
      EXPECT_TRUE(std::equal(enc.begin(), enc.end(), bytes.begin() + r * static_cast<ptrdiff_t>(enc.size())));
      const auto dec = decode(t, enc, 256);
      EXPECT_TRUE(std::equal(dec.begin(), dec.end(), back.data<float>() + r * 256)) << ggml_type_name(t);
    }
  }
}

TEST(GgufQuantsErrors, MalformedInputIsAClearError) {
  std::vector<float> x(48, 1.0f);
  expect_error([&] { (void)gguf_row_bytes(GgmlType::Q4_0, 48); }, {"48", "32-value Q4_0 blocks"});
  expect_error([&] { (void)gguf_row_bytes(GgmlType::Q4_K, 172); }, {"172", "256-value Q4_K blocks"});
  expect_error([&] { (void)gguf_row_bytes(GgmlType::IQ2_XS, 256); }, {"IQ2_XS has no block encoder"});
  Bytes short_row(17);
  std::vector<float> out(32);
  expect_error([&] { gguf_dequantize_row(GgmlType::Q4_0, short_row, out); }, {"Q4_0 row of 32 values needs 18 bytes, got 17"});
  const Bytes truncated(ggml_nbytes(GgmlType::Q6_K, {2, 256}) - 1);
  expect_error([&] { (void)gguf_dequantize_tensor(GgmlType::Q6_K, truncated, {2, 256}); },
               {"Q6_K tensor of shape", "needs 420 bytes, got 419"});
  std::vector<float> bad(2 * 32, 0.5f);
  bad[32 + 7] = std::nanf("");
  expect_error([&] { (void)gguf_quantize_matrix(GgmlType::Q8_0, Tensor::from_f32(bad, {2, 32})); },
               {"NaN at row 1, column 7"});
  std::vector<float> neg(32, -1.0f);
  expect_error([&] { (void)gguf_quantize_matrix(GgmlType::Q4_0, Tensor::from_f32(std::vector<float>(32, 1), {1, 32}), neg); },
               {"importance weight -1 of column 0"});
  std::vector<float> wrong(16, 1.0f);
  expect_error([&] { (void)gguf_quantize_matrix(GgmlType::Q4_0, Tensor::from_f32(std::vector<float>(32, 1), {1, 32}), wrong); },
               {"16 importance weights for 32 columns"});
}

TEST(GgufQuantsErrors, HostileFilesWithBlockTensors) {
  TempDir dir;
  const auto path = dir.file("q.gguf");
  {
    GgufWriter w(path, {}, {{"q", GgmlType::Q4_K, {2, 256}}});
    w.write_raw("q", Bytes(2 * 144, std::byte{0}));
    w.finish();
  }
  Bytes file = read_bytes(path);
  {  // truncated block data
    const auto cut = dir.file("cut.gguf");
    write_bytes(cut, Bytes(file.begin(), file.end() - 1));
    expect_error([&] { (void)read_gguf(cut); }, {cut, "\"q\"", "extends beyond", "truncated"});
  }
  {  // a row length that is not a whole number of blocks: patch dims[0] 256 -> 255
    Bytes patched = file;
    // The tensor info: n_dims (uint32 2), then dims[0] (uint64 256).
    Bytes info;
    const uint32_t n_dims = 2;
    const uint64_t from = 256, to = 255;
    append(info, &n_dims, 4);
    append(info, &from, 8);
    auto it = std::search(patched.begin(), patched.end(), info.begin(), info.end());
    ASSERT_NE(it, patched.end());
    std::memcpy(&*(it + 4), &to, 8);
    const auto odd = dir.file("odd.gguf");
    write_bytes(odd, patched);
    expect_error([&] { (void)read_gguf(odd); }, {odd, "\"q\"", "row length 255", "256-element Q4_K block"});
  }
}

}  // namespace
}  // namespace qf::formats
