#include "model/gguf_packing.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "formats/gguf_quants.h"

namespace qf::model {
namespace {

using formats::GgmlType;

uint16_t read_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
float read_f16(const uint8_t* p) { return f16_to_f32(read_u16(p)); }

// How one block type maps onto PackedMatrix: w = scale * (code - zero) - min.
struct BlockLayout {
  int bits;
  int64_t group;         // weights per (scale, min): ggml's (sub-)block
  int64_t block;         // weights per block
  int64_t block_bytes;
  bool mins;
  uint8_t zero;          // every group's zero point (the unsigned convention; 128 for 8 bits)
  bool two_level;        // K types: fp16 d (dmin) per block times integer sub-block scales (mins)
};

bool layout_of(GgmlType type, BlockLayout* out) {
  switch (type) {
    case GgmlType::Q4_0: *out = {4, 32, 32, 18, false, 8, false}; return true;
    case GgmlType::Q4_1: *out = {4, 32, 32, 20, true, 0, false}; return true;
    case GgmlType::Q8_0: *out = {8, 32, 32, 34, false, 128, false}; return true;
    case GgmlType::Q2_K: *out = {2, 16, 256, 84, true, 0, true}; return true;
    case GgmlType::Q3_K: *out = {3, 16, 256, 110, false, 4, true}; return true;
    case GgmlType::Q4_K: *out = {4, 32, 256, 144, true, 0, true}; return true;
    case GgmlType::Q6_K: *out = {8, 16, 256, 210, false, 128, true}; return true;
    default: return false;  // Q5_0, Q5_1, Q5_K: 5-bit codes have no kernel
  }
}

// One block's group parameters. The 32-weight types give one float scale
// (and min) with ggml's float arithmetic; the K types give their fp16 d and
// dmin as floats and the integer sub-block scales and mins as they are, and
// PackedMatrix forms d * sc and dmin * m in float exactly as ggml's decoders
// (formats/gguf_quants_*.cpp) do before d*sc * q - dmin*m, which
// dequantize_row computes as scale * (c - zero) - min: bit for bit.
struct BlockParams {
  float* scale;      // 32-weight types: [1]
  float* min;        // Q4_1: [1]
  int8_t* sub;       // K types: [groups per block]
  uint8_t* sub_min;  // Q4_K, Q2_K: [groups per block]
  float* super;      // K types: d
  float* super_min;  // Q4_K, Q2_K: dmin
};

// One block's codes (block values, unsigned) and group parameters.
void decode_block(GgmlType type, const uint8_t* b, uint8_t* c, const BlockParams& p) {
  switch (type) {
    case GgmlType::Q4_0:  // {d, qs[16]}: byte j = weight j (low nibble), j + 16 (high)
    case GgmlType::Q4_1: {  // {d, m, qs[16]}: x = d * q + m, so min = -m
      const bool q41 = type == GgmlType::Q4_1;
      const uint8_t* qs = b + (q41 ? 4 : 2);
      for (int j = 0; j < 16; ++j) {
        c[j] = qs[j] & 15;
        c[j + 16] = qs[j] >> 4;
      }
      p.scale[0] = read_f16(b);
      if (q41) p.min[0] = -read_f16(b + 2);  // fl(d*q) - (-m) == fl(d*q + m) exactly
      return;
    }
    case GgmlType::Q8_0:  // {d, int8 qs[32]}
      for (int j = 0; j < 32; ++j) c[j] = static_cast<uint8_t>(b[2 + j] ^ 0x80);  // int8 q -> q + 128
      p.scale[0] = read_f16(b);
      return;
    case GgmlType::Q2_K: {  // {scales[16], qs[64], d, dmin}: element 128h + 32j + l at bits 2j of qs[32h + l]
      *p.super = read_f16(b + 80);
      *p.super_min = read_f16(b + 82);
      for (int e = 0; e < 256; ++e) c[e] = b[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32)) & 3;
      for (int s = 0; s < 16; ++s) {
        p.sub[s] = static_cast<int8_t>(b[s] & 0xF);
        p.sub_min[s] = static_cast<uint8_t>(b[s] >> 4);
      }
      return;
    }
    case GgmlType::Q3_K: {  // {hmask[32], qs[64], scales[12], d}: q3 = low 2 bits - (hmask bit ? 0 : 4)
      *p.super = read_f16(b + 108);
      for (int e = 0; e < 256; ++e) {
        const int low = b[32 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32)) & 3;
        const bool high = (b[e % 32] >> (e / 32)) & 1;
        c[e] = static_cast<uint8_t>(low + (high ? 4 : 0));  // q3 + 4, zero point 4
      }
      const uint8_t* sc = b + 96;
      for (int s = 0; s < 16; ++s) {
        const int lo = s < 8 ? sc[s] & 0xF : sc[s - 8] >> 4;
        const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
        p.sub[s] = static_cast<int8_t>((lo | (hi << 4)) - 32);  // signed: may be 0 or negative
      }
      return;
    }
    case GgmlType::Q4_K: {  // {d, dmin, scales[12], qs[128]}: element 64k + 32h + l = nibble h of qs[32k + l]
      *p.super = read_f16(b);
      *p.super_min = read_f16(b + 2);
      const uint8_t* sc = b + 4;
      for (int e = 0; e < 256; ++e) c[e] = b[16 + 32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32)) & 0xF;
      for (int j = 0; j < 8; ++j) {
        int s, m;
        if (j < 4) {
          s = sc[j] & 63;
          m = sc[j + 4] & 63;
        } else {
          s = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
          m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
        }
        p.sub[j] = static_cast<int8_t>(s);  // 0 for a sub-block of equal weights -dmin*m
        p.sub_min[j] = static_cast<uint8_t>(m);
      }
      return;
    }
    case GgmlType::Q6_K: {  // {ql[128], qh[64], int8 scales[16], d}
      *p.super = read_f16(b + 208);
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int low = (b[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF;
        const int high = (b[128 + 32 * h + l] >> (2 * k)) & 3;
        c[e] = static_cast<uint8_t>((low | (high << 4)) - 32 + 128);  // q6 - 32 as a signed 8-bit code
      }
      // Signed sub-block scales: d * sc may be negative, which PackedMatrix takes as it is.
      for (int s = 0; s < 16; ++s) p.sub[s] = static_cast<int8_t>(b[192 + s]);
      return;
    }
    default:
      fail("{} blocks have no integer kernel", formats::ggml_type_name(type));
  }
}

}  // namespace

bool gguf_kernels_support(GgmlType type) {
  BlockLayout l{};
  return layout_of(type, &l);
}

std::shared_ptr<const kernels::PackedMatrix> pack_gguf_blocks(const formats::GgufBlocks& b, int64_t cols) {
  BlockLayout l{};
  QF_CHECK(layout_of(b.type, &l), "{} blocks have no integer kernel (Q4_0, Q4_1, Q8_0, Q2_K, Q3_K, Q4_K and Q6_K do)",
           formats::ggml_type_name(b.type));
  QF_CHECK(b.rows.ndim() == 2 && cols % l.block == 0 && b.rows.dim(1) == cols / l.block * l.block_bytes,
           "{} blocks of shape {} do not hold rows of {} weights", formats::ggml_type_name(b.type),
           shape_to_string(b.rows.shape()), cols);
  const int64_t rows = b.rows.dim(0), groups = cols / l.group, per_block = l.block / l.group;
  const int64_t blocks = cols / l.block;
  // Every type has one zero point (stored once); the K types keep their two-level scales (one super-block per
  // ggml block), which is what makes Q4_K 4.75 bits per weight here instead of 6.25 with float scales.
  const kernels::GroupParams params{.mins = l.mins, .super_groups = l.two_level ? per_block : 0, .uniform_zero = l.zero};
  auto packed = std::make_shared<kernels::PackedMatrix>(l.bits, rows, cols, l.group, params);
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  const size_t n_float = l.two_level ? 0 : static_cast<size_t>(groups), n_int = l.two_level ? groups : 0;
  std::vector<float> scales(n_float), mins(l.mins ? n_float : 0);
  std::vector<int8_t> sub(n_int);
  std::vector<uint8_t> sub_min(l.mins ? n_int : 0);
  std::vector<float> super(l.two_level ? static_cast<size_t>(blocks) : 0), super_min(l.mins ? super.size() : 0);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = b.rows.data<uint8_t>() + r * b.rows.dim(1);
    for (int64_t i = 0; i < blocks; ++i) {
      BlockParams p{};
      if (l.two_level) {
        p.sub = sub.data() + i * per_block;
        p.super = super.data() + i;
        if (l.mins) p.sub_min = sub_min.data() + i * per_block, p.super_min = super_min.data() + i;
      } else {
        p.scale = scales.data() + i;
        if (l.mins) p.min = mins.data() + i;
      }
      decode_block(b.type, row + i * l.block_bytes, codes.data() + i * l.block, p);
    }
    if (l.two_level)
      packed->set_row(r, codes, kernels::TwoLevelRow{sub, super, sub_min, super_min}, {});
    else
      packed->set_row(r, codes, scales, {}, mins);
  }
  return packed;
}

}  // namespace qf::model
