// The K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: super-blocks of 256 values in
// sub-blocks of 16 or 32, each sub-block's scale (and min) quantized again
// against one fp16 super-block scale. Encoders follow ggml's
// quantize_row_*_ref without importance weights and quantize_row_*_impl
// with them (gguf_quants.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/gguf_quants_codecs.h"
#include "formats/gguf_quants_search.h"

namespace qf::formats::gguf_detail {
namespace {

constexpr size_t kQK_K = 256;

float sum_squares(const float* x, size_t n) {
  float s = 0.0f;
  for (size_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

// 2-bit codes of a 256-value super-block in 64 bytes: element 128h + 32j + l
// sits at bits 2j of byte 32h + l (Q2_K's qs, Q3_K's low bits).
void pack_2bit(const uint8_t* codes, std::byte* qs) {
  for (size_t h = 0; h < 2; ++h)
    for (size_t l = 0; l < 32; ++l) {
      const uint8_t* c = codes + 128 * h + l;
      qs[32 * h + l] = static_cast<std::byte>((c[0] & 3) | ((c[32] & 3) << 2) | ((c[64] & 3) << 4) | ((c[96] & 3) << 6));
    }
}
uint8_t unpack_2bit(const std::byte* qs, size_t e) {
  const size_t h = e / 128, j = (e % 128) / 32, l = e % 32;
  return (byte_at(qs, 32 * h + l) >> (2 * j)) & 3;
}

// Q4_K/Q5_K's 12 bytes of eight 6-bit scales and mins: sub-blocks 0-3 in
// the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 in the
// nibbles of bytes 8-11 (scale low, min high) with their top 2 bits in the
// top bits of bytes 0-3 (scales) and 4-7 (mins).
void pack_scale_min_6bit(const uint8_t* sc, const uint8_t* mn, std::byte* out) {
  uint8_t b[12] = {};
  for (size_t j = 0; j < 8; ++j) {
    if (j < 4) {
      b[j] = sc[j];
      b[j + 4] = mn[j];
    } else {
      b[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
      b[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      b[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
    }
  }
  std::memcpy(out, b, 12);
}
void unpack_scale_min_6bit(const std::byte* p, size_t j, int& sc, int& mn) {
  if (j < 4) {
    sc = byte_at(p, j) & 63;
    mn = byte_at(p, j + 4) & 63;
  } else {
    sc = (byte_at(p, j + 4) & 0xF) | ((byte_at(p, j - 4) >> 6) << 4);
    mn = (byte_at(p, j + 4) >> 4) | ((byte_at(p, j) >> 6) << 4);
  }
}

// Importance weights of the _impl encoders: w * sqrt(sigma^2 + x^2).
void impl_weights(const float* x, const float* qw, float sigma2, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = qw[i] * std::sqrt(sigma2 + x[i] * x[i]);
}

// --- Q2_K {scales[16], qs[64], d, dmin}

void decode_q2_k(const std::byte* b, float* out) {
  const float d = get_f16(b + 80), dmin = get_f16(b + 82);
  for (size_t e = 0; e < kQK_K; ++e) {
    const uint8_t sc = byte_at(b, e / 16);
    out[e] = d * static_cast<float>(sc & 0xF) * static_cast<float>(unpack_2bit(b + 16, e)) -
             dmin * static_cast<float>(sc >> 4);
  }
}

void encode_q2_k(std::span<const float> row, std::byte* out, std::span<const float> w) {
  for (size_t sb = 0; sb * kQK_K < row.size(); ++sb, out += 84) {
    const float* x = row.data() + sb * kQK_K;
    uint8_t codes[kQK_K];
    float scales[16], mins[16];
    uint8_t scale_q[16] = {}, min_q[16] = {};
    float d = 0.0f, dmin = 0.0f;
    if (w.empty()) {
      float max_scale = 0.0f, max_min = 0.0f;
      for (size_t j = 0; j < 16; ++j) {
        float weights[16];
        for (size_t l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
        scales[j] = search_scale_min({x + 16 * j, 16}, 3, weights, {codes + 16 * j, 16}, &mins[j], -0.5f, 0.1f, 15,
                                     true);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
      }
      if (max_scale > 0.0f) {
        const float iscale = 15.0f / max_scale;
        for (size_t j = 0; j < 16; ++j) scale_q[j] = static_cast<uint8_t>(std::clamp(nearest(iscale * scales[j]), 0, 15));
        d = max_scale / 15.0f;
      }
      if (max_min > 0.0f) {
        const float iscale = 15.0f / max_min;
        for (size_t j = 0; j < 16; ++j) min_q[j] = static_cast<uint8_t>(std::clamp(nearest(iscale * mins[j]), 0, 15));
        dmin = max_min / 15.0f;
      }
    } else {
      const float sigma2 = sum_squares(x, kQK_K) / static_cast<float>(kQK_K);
      float sw[16];
      for (size_t j = 0; j < 16; ++j) {
        float weights[16];
        impl_weights(x + 16 * j, w.data() + sb * kQK_K + 16 * j, sigma2, 16, weights);
        sw[j] = 0.0f;
        for (const float v : weights) sw[j] += v;
        scales[j] = search_scale_min({x + 16 * j, 16}, 3, weights, {codes + 16 * j, 16}, &mins[j], -0.9f, 0.05f, 36,
                                     false);
      }
      d = search_positive(scales, 15, sw, scale_q);
      dmin = search_positive(mins, 15, sw, min_q);
    }
    put_f16(out + 80, d);
    put_f16(out + 82, dmin);
    const float dq = as_f16(d), mq = as_f16(dmin);
    for (size_t j = 0; j < 16; ++j) {
      out[j] = static_cast<std::byte>(scale_q[j] | (min_q[j] << 4));
      // Requantize against the scales as stored.
      const float ds = dq * static_cast<float>(scale_q[j]);
      if (ds == 0.0f) continue;
      const float dm = mq * static_cast<float>(min_q[j]);
      for (size_t l = 0; l < 16; ++l)
        codes[16 * j + l] = static_cast<uint8_t>(std::clamp(nearest((x[16 * j + l] + dm) / ds), 0, 3));
    }
    pack_2bit(codes, out + 16);
  }
}

// --- Q3_K {hmask[32], qs[64], scales[12], d}

// Sixteen 6-bit scales (stored + 32) in 12 bytes: the low nibble of scale s
// in byte s (s < 8, low nibble) or byte s - 8 (high nibble); its top two bits
// at bits 2 * (s / 4) of byte 8 + s % 4.
void pack_q3_scales(const int* sc, std::byte* out) {
  uint8_t b[12] = {};
  for (size_t s = 0; s < 16; ++s) {
    const int v = sc[s];
    if (s < 8)
      b[s] = static_cast<uint8_t>(v & 0xF);
    else
      b[s - 8] |= static_cast<uint8_t>((v & 0xF) << 4);
    b[8 + s % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (s / 4)));
  }
  std::memcpy(out, b, 12);
}
int unpack_q3_scale(const std::byte* p, size_t s) {
  const int low = s < 8 ? byte_at(p, s) & 0xF : byte_at(p, s - 8) >> 4;
  const int high = (byte_at(p, 8 + s % 4) >> (2 * (s / 4))) & 3;
  return (low | (high << 4)) - 32;
}

void decode_q3_k(const std::byte* b, float* out) {
  const float d = get_f16(b + 108);
  for (size_t e = 0; e < kQK_K; ++e) {
    // The high bit of element e is bit e / 32 of hmask[e % 32]; set means q3 = low bits.
    const bool high = (byte_at(b, e % 32) >> (e / 32)) & 1;
    const int q = static_cast<int>(unpack_2bit(b + 32, e)) - (high ? 0 : 4);
    out[e] = d * static_cast<float>(unpack_q3_scale(b + 96, e / 16)) * static_cast<float>(q);
  }
}

void encode_q3_k(std::span<const float> row, std::byte* out, std::span<const float> w) {
  for (size_t sb = 0; sb * kQK_K < row.size(); ++sb, out += 110) {
    const float* x = row.data() + sb * kQK_K;
    int8_t codes[kQK_K];
    float scales[16];
    int stored[16] = {};  // scale + 32, 0..63
    bool pack = true;
    float d = 0.0f;
    if (w.empty()) {
      float max_scale = 0.0f, amax = 0.0f;
      for (size_t j = 0; j < 16; ++j) {
        scales[j] = search_symmetric_refined({x + 16 * j, 16}, 4, {codes + 16 * j, 16});
        if (std::fabs(scales[j]) > amax) {
          amax = std::fabs(scales[j]);
          max_scale = scales[j];
        }
      }
      pack = max_scale != 0.0f;  // an all-zero super-block keeps zero scale bytes, as in ggml
      if (pack) {
        const float iscale = -32.0f / max_scale;
        for (size_t j = 0; j < 16; ++j) stored[j] = std::clamp(nearest(iscale * scales[j]), -32, 31) + 32;
        d = 1.0f / iscale;
      }
    } else {
      const float sigma2 = 2.0f * sum_squares(x, kQK_K) / static_cast<float>(kQK_K);
      float sw[16];
      for (size_t j = 0; j < 16; ++j) {
        float weights[16];
        impl_weights(x + 16 * j, w.data() + sb * kQK_K + 16 * j, sigma2, 16, weights);
        sw[j] = 0.0f;
        for (const float v : weights) sw[j] += v;
        scales[j] = search_symmetric({x + 16 * j, 16}, 4, weights, {codes + 16 * j, 16});
      }
      int8_t ls[16];
      d = search_symmetric(scales, 32, sw, ls);
      for (size_t j = 0; j < 16; ++j) stored[j] = ls[j];
    }
    if (pack)
      pack_q3_scales(stored, out + 96);
    else
      std::memset(out + 96, 0, 12);
    put_f16(out + 108, d);
    const float dq = as_f16(d);
    for (size_t j = 0; j < 16; ++j) {
      const float ds = dq * static_cast<float>(unpack_q3_scale(out + 96, j));
      if (ds == 0.0f) continue;
      for (size_t l = 0; l < 16; ++l)
        codes[16 * j + l] = static_cast<int8_t>(std::clamp(nearest(x[16 * j + l] / ds), -4, 3) + 4);
    }
    uint8_t low[kQK_K];
    std::memset(out, 0, 32);
    for (size_t e = 0; e < kQK_K; ++e) {
      uint8_t c = static_cast<uint8_t>(codes[e]);
      if (c > 3) {
        out[e % 32] |= static_cast<std::byte>(1u << (e / 32));
        c = static_cast<uint8_t>(c - 4);
      }
      low[e] = c;
    }
    pack_2bit(low, out + 32);
  }
}

// --- Q4_K {d, dmin, scales[12], qs[128]} and Q5_K {d, dmin, scales[12], qh[32], qs[128]}
// Element 64c + l (l < 32) is the low nibble of qs[32c + l], element
// 64c + 32 + l its high nibble; Q5_K's fifth bits: bit 2c (resp. 2c + 1) of qh[l].

template <int kBits>
void decode_qk_asym(const std::byte* b, float* out) {
  const float d = get_f16(b), dmin = get_f16(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* qh = b + 16;
  const std::byte* qs = b + (kBits == 5 ? 48 : 16);
  for (size_t e = 0; e < kQK_K; ++e) {
    const size_t c = e / 64, half = (e % 64) / 32, l = e % 32;
    int q = (byte_at(qs, 32 * c + l) >> (4 * half)) & 0xF;
    if constexpr (kBits == 5) q |= ((byte_at(qh, l) >> (2 * c + half)) & 1) << 4;
    int sc, mn;
    unpack_scale_min_6bit(scales, e / 32, sc, mn);
    out[e] = d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(mn);
  }
}

template <int kBits>
void encode_qk_asym(std::span<const float> row, std::byte* out, std::span<const float> w) {
  constexpr int nmax = (1 << kBits) - 1;
  constexpr size_t bytes = kBits == 5 ? 176 : 144;
  for (size_t sb = 0; sb * kQK_K < row.size(); ++sb, out += bytes) {
    const float* x = row.data() + sb * kQK_K;
    uint8_t codes[kQK_K];
    float scales[8], mins[8];
    uint8_t ls[8], lm[8];
    float d = 0.0f, dmin = 0.0f;
    if (w.empty()) {
      float max_scale = 0.0f, max_min = 0.0f;
      for (size_t j = 0; j < 8; ++j) {
        const float* xs = x + 32 * j;
        const float av_x = std::sqrt(sum_squares(xs, 32) / 32.0f);
        float weights[32];
        for (size_t l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
        scales[j] = kBits == 4 ? search_scale_min({xs, 32}, nmax, weights, {codes + 32 * j, 32}, &mins[j], -1.0f,
                                                  0.1f, 20, false)
                               : search_scale_min({xs, 32}, nmax, weights, {codes + 32 * j, 32}, &mins[j], -0.5f,
                                                  0.1f, 15, false);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
      }
      const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
      const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
      for (size_t j = 0; j < 8; ++j) {
        ls[j] = static_cast<uint8_t>(std::clamp(nearest(inv_scale * scales[j]), 0, 63));
        lm[j] = static_cast<uint8_t>(std::clamp(nearest(inv_min * mins[j]), 0, 63));
      }
      d = max_scale / 63.0f;
      dmin = max_min / 63.0f;
    } else {
      const float sigma2 = 2.0f * sum_squares(x, kQK_K) / static_cast<float>(kQK_K);
      float sw[8];
      for (size_t j = 0; j < 8; ++j) {
        float weights[32];
        impl_weights(x + 32 * j, w.data() + sb * kQK_K + 32 * j, sigma2, 32, weights);
        sw[j] = 0.0f;
        for (const float v : weights) sw[j] += v;
        scales[j] = search_scale_min({x + 32 * j, 32}, nmax, weights, {codes + 32 * j, 32}, &mins[j], -0.9f, 0.05f,
                                     36, false);
      }
      d = search_positive(scales, 63, sw, ls);
      dmin = search_positive(mins, 63, sw, lm);
    }
    put_f16(out, d);
    put_f16(out + 2, dmin);
    pack_scale_min_6bit(ls, lm, out + 4);
    const float dq = as_f16(d), mq = as_f16(dmin);
    for (size_t j = 0; j < 8; ++j) {
      const float ds = dq * static_cast<float>(ls[j]);
      if (ds == 0.0f) continue;
      const float dm = mq * static_cast<float>(lm[j]);
      for (size_t l = 0; l < 32; ++l)
        codes[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest((x[32 * j + l] + dm) / ds), 0, nmax));
    }
    std::byte* qs = out + (kBits == 5 ? 48 : 16);
    if constexpr (kBits == 5) std::memset(out + 16, 0, 32);
    for (size_t c = 0; c < 4; ++c)
      for (size_t l = 0; l < 32; ++l) {
        const uint8_t lo = codes[64 * c + l], hi = codes[64 * c + 32 + l];
        qs[32 * c + l] = static_cast<std::byte>((lo & 0xF) | ((hi & 0xF) << 4));
        if constexpr (kBits == 5)
          out[16 + l] |= static_cast<std::byte>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
  }
}

// --- Q6_K {ql[128], qh[64], scales[16] int8, d}
// Element 128h + 32k + l (k < 4, l < 32): low 4 bits in ql[64h + l + 32 (k & 1)]
// (low nibble for k < 2, high nibble otherwise), top 2 bits at bits 2k of
// qh[32h + l]; its scale is scales[8h + (32k + l) / 16].

void decode_q6_k(const std::byte* b, float* out) {
  const float d = get_f16(b + 208);
  for (size_t e = 0; e < kQK_K; ++e) {
    const size_t h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int low = (byte_at(b, 64 * h + l + 32 * (k & 1)) >> (4 * (k >> 1))) & 0xF;
    const int high = (byte_at(b + 128, 32 * h + l) >> (2 * k)) & 3;
    const int sc = static_cast<int8_t>(byte_at(b + 192, e / 16));
    out[e] = d * static_cast<float>(sc) * static_cast<float>((low | (high << 4)) - 32);
  }
}

void encode_q6_k(std::span<const float> row, std::byte* out, std::span<const float> w) {
  for (size_t sb = 0; sb * kQK_K < row.size(); ++sb, out += 210) {
    const float* x = row.data() + sb * kQK_K;
    int8_t codes[kQK_K];
    float scales[16];
    float max_scale = 0.0f, max_abs = 0.0f;
    for (size_t j = 0; j < 16; ++j) {
      // ggml's Q6_K _impl uses the imatrix weights as they are.
      const std::span<const float> weights = w.empty() ? std::span<const float>() : w.subspan(sb * kQK_K + 16 * j, 16);
      scales[j] = search_symmetric({x + 16 * j, 16}, 32, weights, {codes + 16 * j, 16});
      if (std::fabs(scales[j]) > max_abs) {
        max_abs = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    std::memset(out, 0, 210);
    if (max_abs < kGroupEps) continue;  // all zero: zero bytes decode to 0
    const float iscale = -128.0f / max_scale;
    put_f16(out + 208, 1.0f / iscale);
    const float dq = get_f16(out + 208);
    for (size_t j = 0; j < 16; ++j) {
      const int sc = std::clamp(nearest(iscale * scales[j]), -128, 127);
      out[192 + j] = static_cast<std::byte>(static_cast<int8_t>(sc));
      const float ds = dq * static_cast<float>(sc);
      if (ds == 0.0f) continue;
      for (size_t l = 0; l < 16; ++l)
        codes[16 * j + l] = static_cast<int8_t>(std::clamp(nearest(x[16 * j + l] / ds), -32, 31) + 32);
    }
    for (size_t e = 0; e < kQK_K; ++e) {
      const size_t h = e / 128, k = (e % 128) / 32, l = e % 32;
      const uint8_t c = static_cast<uint8_t>(codes[e]);
      out[64 * h + l + 32 * (k & 1)] |= static_cast<std::byte>((c & 0xF) << (4 * (k >> 1)));
      out[128 + 32 * h + l] |= static_cast<std::byte>((c >> 4) << (2 * k));
    }
  }
}

constexpr BlockCodec kK[] = {
    {GgmlType::Q2_K, kQK_K, 84, decode_q2_k, encode_q2_k},
    {GgmlType::Q3_K, kQK_K, 110, decode_q3_k, encode_q3_k},
    {GgmlType::Q4_K, kQK_K, 144, decode_qk_asym<4>, encode_qk_asym<4>},
    {GgmlType::Q5_K, kQK_K, 176, decode_qk_asym<5>, encode_qk_asym<5>},
    {GgmlType::Q6_K, kQK_K, 210, decode_q6_k, encode_q6_k},
};

}  // namespace

const BlockCodec* k_codec(GgmlType type) {
  for (const BlockCodec& c : kK)
    if (c.type == type) return &c;
  return nullptr;
}

}  // namespace qf::formats::gguf_detail
