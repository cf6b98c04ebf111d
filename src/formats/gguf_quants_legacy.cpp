// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: blocks of 32 with one fp16 scale (and min).
// Without importance weights the encoders are ggml's quantize_row_*_ref,
// rounding included (their float operations in the same order, so the bytes
// are identical); with them, quantize_row_*_impl's weighted searches.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/gguf_quants_codecs.h"
#include "formats/gguf_quants_search.h"

namespace qf::formats::gguf_detail {
namespace {

constexpr size_t kQK32 = 32;

// Importance weights of a block as the _impl encoders use them: the
// imatrix weight times sqrt(sigma^2 + x^2), sigma^2 the row's mean square.
void block_weights(std::span<const float> x, std::span<const float> qw, float sigma2, float* out) {
  for (size_t j = 0; j < x.size(); ++j) out[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

float mean_square(std::span<const float> row) {
  float sum = 0.0f;
  for (const float v : row) sum += v * v;
  return sum / static_cast<float>(row.size());
}

// The signed value of largest magnitude (first on ties).
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (size_t j = 0; j < kQK32; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (size_t j = 0; j < kQK32; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
}

// Element j in the low nibble of byte j, element j + 16 in the high nibble.
void pack_nibbles(const int8_t* codes, std::byte* qs) {
  for (size_t j = 0; j < kQK32 / 2; ++j)
    qs[j] = static_cast<std::byte>((codes[j] & 0x0F) | ((codes[j + kQK32 / 2] & 0x0F) << 4));
}
// The fifth bit of element j is bit j of the little-endian uint32 qh.
void pack_high_bits(const int8_t* codes, std::byte* qh) {
  uint32_t bits = 0;
  for (size_t j = 0; j < kQK32; ++j) bits |= static_cast<uint32_t>((codes[j] >> 4) & 1) << j;
  std::memcpy(qh, &bits, 4);
}

// --- Q4_0 {d, qs[16]}: x = d * (q - 8)

void decode_q4_0(const std::byte* b, float* out) {
  const float d = get_f16(b);
  for (size_t j = 0; j < kQK32 / 2; ++j) {
    out[j] = static_cast<float>((byte_at(b, 2 + j) & 0x0F) - 8) * d;
    out[j + kQK32 / 2] = static_cast<float>((byte_at(b, 2 + j) >> 4) - 8) * d;
  }
}

void encode_q4_0(std::span<const float> row, std::byte* out, std::span<const float> w) {
  const float sigma2 = w.empty() ? 0.0f : mean_square(row);
  for (size_t b = 0; b * kQK32 < row.size(); ++b, out += 18) {
    const float* x = row.data() + b * kQK32;
    int8_t codes[kQK32];
    if (w.empty()) {
      // The largest magnitude maps to -8 exactly (the grid is [-8, 7]).
      const float d = signed_absmax(x) / -8;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      put_f16(out, d);
      for (size_t j = 0; j < kQK32; ++j) codes[j] = static_cast<int8_t>(std::min(15, static_cast<int>(x[j] * id + 8.5f)));
    } else {
      float weights[kQK32];
      block_weights({x, kQK32}, w.subspan(b * kQK32, kQK32), sigma2, weights);
      put_f16(out, search_symmetric({x, kQK32}, 8, {weights, kQK32}, codes));
    }
    pack_nibbles(codes, out + 2);
  }
}

// --- Q4_1 {d, m, qs[16]}: x = d * q + m

void decode_q4_1(const std::byte* b, float* out) {
  const float d = get_f16(b), m = get_f16(b + 2);
  for (size_t j = 0; j < kQK32 / 2; ++j) {
    out[j] = static_cast<float>(byte_at(b, 4 + j) & 0x0F) * d + m;
    out[j + kQK32 / 2] = static_cast<float>(byte_at(b, 4 + j) >> 4) * d + m;
  }
}

void encode_q4_1(std::span<const float> row, std::byte* out, std::span<const float> w) {
  const float sigma2 = w.empty() ? 0.0f : mean_square(row);
  for (size_t b = 0; b * kQK32 < row.size(); ++b, out += 20) {
    const float* x = row.data() + b * kQK32;
    int8_t codes[kQK32];
    if (w.empty()) {
      float min, max;
      min_max(x, min, max);
      const float d = (max - min) / ((1 << 4) - 1);
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      put_f16(out, d);
      put_f16(out + 2, min);
      for (size_t j = 0; j < kQK32; ++j)
        codes[j] = static_cast<int8_t>(std::min(15, static_cast<int>((x[j] - min) * id + 0.5f)));
    } else {
      float weights[kQK32], min = 0.0f;
      uint8_t l[kQK32];
      block_weights({x, kQK32}, w.subspan(b * kQK32, kQK32), sigma2, weights);
      const float d = search_scale_min({x, kQK32}, 15, {weights, kQK32}, l, &min, -0.9f, 0.05f, 36, false);
      put_f16(out, d);
      put_f16(out + 2, -min);
      for (size_t j = 0; j < kQK32; ++j) codes[j] = static_cast<int8_t>(l[j]);
    }
    pack_nibbles(codes, out + 4);
  }
}

// --- Q5_0 {d, qh[4], qs[16]}: x = d * (q - 16)

uint32_t high_bits(const std::byte* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  return bits;
}

void decode_q5_0(const std::byte* b, float* out) {
  const float d = get_f16(b);
  const uint32_t qh = high_bits(b + 2);
  for (size_t j = 0; j < kQK32 / 2; ++j) {
    const int lo = (byte_at(b, 6 + j) & 0x0F) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (byte_at(b, 6 + j) >> 4) | static_cast<int>(((qh >> (j + kQK32 / 2)) & 1) << 4);
    out[j] = static_cast<float>(lo - 16) * d;
    out[j + kQK32 / 2] = static_cast<float>(hi - 16) * d;
  }
}

void encode_q5_0(std::span<const float> row, std::byte* out, std::span<const float> w) {
  const float sigma2 = w.empty() ? 0.0f : mean_square(row);
  for (size_t b = 0; b * kQK32 < row.size(); ++b, out += 22) {
    const float* x = row.data() + b * kQK32;
    int8_t codes[kQK32];
    if (w.empty()) {
      const float d = signed_absmax(x) / -16;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      put_f16(out, d);
      for (size_t j = 0; j < kQK32; ++j)
        codes[j] = static_cast<int8_t>(std::min(31, static_cast<int>(x[j] * id + 16.5f)));
    } else {
      float weights[kQK32];
      block_weights({x, kQK32}, w.subspan(b * kQK32, kQK32), sigma2, weights);
      put_f16(out, search_symmetric({x, kQK32}, 16, {weights, kQK32}, codes));
    }
    pack_high_bits(codes, out + 2);
    pack_nibbles(codes, out + 6);
  }
}

// --- Q5_1 {d, m, qh[4], qs[16]}: x = d * q + m

void decode_q5_1(const std::byte* b, float* out) {
  const float d = get_f16(b), m = get_f16(b + 2);
  const uint32_t qh = high_bits(b + 4);
  for (size_t j = 0; j < kQK32 / 2; ++j) {
    const int lo = (byte_at(b, 8 + j) & 0x0F) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (byte_at(b, 8 + j) >> 4) | static_cast<int>(((qh >> (j + kQK32 / 2)) & 1) << 4);
    out[j] = static_cast<float>(lo) * d + m;
    out[j + kQK32 / 2] = static_cast<float>(hi) * d + m;
  }
}

void encode_q5_1(std::span<const float> row, std::byte* out, std::span<const float> w) {
  const float sigma2 = w.empty() ? 0.0f : mean_square(row);
  for (size_t b = 0; b * kQK32 < row.size(); ++b, out += 24) {
    const float* x = row.data() + b * kQK32;
    int8_t codes[kQK32];
    if (w.empty()) {
      float min, max;
      min_max(x, min, max);
      const float d = (max - min) / ((1 << 5) - 1);
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      put_f16(out, d);
      put_f16(out + 2, min);
      // ggml clamps nothing here; (max - min) * id rounds to at most 31.
      for (size_t j = 0; j < kQK32; ++j)
        codes[j] = static_cast<int8_t>(std::min(31, static_cast<int>((x[j] - min) * id + 0.5f)));
    } else {
      float weights[kQK32], min = 0.0f;
      uint8_t l[kQK32];
      block_weights({x, kQK32}, w.subspan(b * kQK32, kQK32), sigma2, weights);
      const float d = search_scale_min({x, kQK32}, 31, {weights, kQK32}, l, &min, -0.9f, 0.05f, 36, false);
      put_f16(out, d);
      put_f16(out + 2, -min);
      for (size_t j = 0; j < kQK32; ++j) codes[j] = static_cast<int8_t>(l[j]);
    }
    pack_high_bits(codes, out + 4);
    pack_nibbles(codes, out + 8);
  }
}

// --- Q8_0 {d, qs[32] int8}: x = d * q

void decode_q8_0(const std::byte* b, float* out) {
  const float d = get_f16(b);
  for (size_t j = 0; j < kQK32; ++j) out[j] = static_cast<float>(static_cast<int8_t>(byte_at(b, 2 + j))) * d;
}

// ggml has no weighted Q8_0 search: importance weights are ignored.
void encode_q8_0(std::span<const float> row, std::byte* out, std::span<const float>) {
  for (size_t b = 0; b * kQK32 < row.size(); ++b, out += 34) {
    const float* x = row.data() + b * kQK32;
    float amax = 0.0f;
    for (size_t j = 0; j < kQK32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    // roundf: half away from zero, as the reference does.
    for (size_t j = 0; j < kQK32; ++j) out[2 + j] = static_cast<std::byte>(static_cast<int8_t>(std::round(x[j] * id)));
  }
}

constexpr BlockCodec kLegacy[] = {
    {GgmlType::Q4_0, kQK32, 18, decode_q4_0, encode_q4_0}, {GgmlType::Q4_1, kQK32, 20, decode_q4_1, encode_q4_1},
    {GgmlType::Q5_0, kQK32, 22, decode_q5_0, encode_q5_0}, {GgmlType::Q5_1, kQK32, 24, decode_q5_1, encode_q5_1},
    {GgmlType::Q8_0, kQK32, 34, decode_q8_0, encode_q8_0},
};

}  // namespace

const BlockCodec* legacy_codec(GgmlType type) {
  for (const BlockCodec& c : kLegacy)
    if (c.type == type) return &c;
  return nullptr;
}

}  // namespace qf::formats::gguf_detail
