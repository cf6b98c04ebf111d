// Integer weight matrices in the layout the matmul kernels read.
//
// A PackedMatrix holds `rows` output rows of `cols` weights each (an
// nn.Linear weight [out, in]), every weight w = scale_g * (c - zero_g) with an
// integer code c of `bits` bits and one (scale, zero) pair per group of
// `group_size` consecutive weights of a row. The last group of a row may be
// shorter (ragged) when group_size does not divide cols.
//
// Optionally (constructed with_mins) every group also has a float offset:
//   w = scale_g * (c - zero_g) - min_g.
// That is the affine form of ggml's Q4_K / Q2_K / Q4_1 blocks, whose offset
// (dmin * m) is no integer multiple of the scale, so no zero point can hold
// it. The kernels compute the product without the mins and matmul() then
// subtracts sum_g min_g * (sum of x over group g) once per output.
//
// Supported shapes (PackedMatrix::supports): bits 2, 3, 4 or 8; group_size 16,
// 32, any multiple of 64, or >= cols (one group per row: per-channel). 8-bit
// codes are symmetric only (zero point 128 in the unsigned convention),
// because the kernels multiply them as signed int8. Groups of 16 are what
// ggml's Q6_K, Q3_K and Q2_K sub-blocks need: four groups share a chunk.
//
// Layout. Rows are padded to padded_cols = cols rounded up to 64 (a "chunk");
// padding codes are 0 for 2/3/4 bits and the signed code 0 for 8 bits, and the
// kernels pad activations with zeros, so padding adds nothing. Row r starts at
// codes + r * row_bytes, row_bytes = padded_cols * bits / 8, and chunk j of a
// row (weights 64j .. 64j+63, numbered i = 0..63 within the chunk) occupies
// bytes [8 * bits * j, 8 * bits * (j + 1)) of the row:
//   8 bits: 64 bytes, byte i = the signed code c - 128 (int8);
//   4 bits: 32 bytes, byte i (i < 32) = c[i] | c[i + 32] << 4;
//   2 bits: 16 bytes, byte i (i < 16) = c[i] | c[i + 16] << 2 | c[i + 32] << 4 | c[i + 48] << 6;
//   3 bits: the low two bits of every code in the 2-bit layout (16 bytes), then
//           8 bytes read as a little-endian uint64 whose bit i is bit 2 of c[i].
// So one 32-byte (4-bit), 16-byte (2-bit) or 16+8-byte (3-bit) load followed by
// shifts and masks yields the chunk's 64 codes in natural order, in one
// 512-bit register or two 256-bit ones.
//
// Group parameters are row-major [rows, groups]: scales as float, zero points
// as uint8 in the unsigned-code convention (symmetric b-bit codes have zero
// 2^(b-1); 8-bit matrices store zero 0 because their codes are already signed).
// For 8-bit matrices row_sums[r] = sum of row r's signed codes, which the VNNI
// kernels need (they multiply activations offset by +128 as unsigned bytes).
//
// Two more compact forms of the group parameters (GroupParams), both exact:
// - Uniform zero point: every group of the matrix has the same zero point
//   (symmetric codes; ggml's Q4_0 8, Q3_K 4, Q4_K and Q2_K 0), stored once:
//   row_zeros(r) is then the same `groups` bytes for every row.
// - Two-level scales (and mins): groups come in super-blocks of super_groups
//   consecutive groups of a row (the last one may be shorter), and group g of
//   super-block b = g / super_groups has
//     scale_g = super_scale_b * sub_scale_g     (sub_scale an int8)
//     min_g   = super_min_b * sub_min_g         (sub_min a uint8)
//   formed in float, one multiply each. That is ggml's K-quant form (an fp16
//   d / dmin per 256 weights times 4- to 8-bit sub-block integers), and an
//   fp16 times an 8-bit integer is exact in float, so the scale is the very
//   float ggml's decoders compute. Sub-parameters are row-major [rows, groups],
//   super-parameters [rows, supers]. Instead of 32 bits of scale (and 32 of
//   min) per group this costs 8 (and 8) plus 32 (and 32) per super-block:
//   Q4_K at 4 + (8 + 8) / 32 + 64 / 256 = 4.75 bits per weight instead of
//   6.25, Q6_K's 8-bit codes at 8 + 8 / 16 + 32 / 256 = 8.625 instead of 10.5.
//   The kernels form each row's float scales (into a per-thread scratch of a
//   few rows) before they stream its codes; row_scales() and row_mins() exist
//   only for float parameters, group_scales() and group_mins() for both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kernels/aligned_buffer.h"

namespace qf::kernels {

inline constexpr int64_t kChunk = 64;

// How a matrix stores its group parameters (see the header comment).
struct GroupParams {
  bool mins = false;         // a float offset per group
  int64_t super_groups = 0;  // > 0: two-level scales (and mins), this many groups per super-block
  int uniform_zero = -1;     // 0 .. 2^bits - 1 (128 for 8 bits): every group's zero point, stored once
};

// One row's two-level group parameters (PackedMatrix::set_row).
struct TwoLevelRow {
  std::span<const int8_t> sub_scales;   // groups()
  std::span<const float> super_scales;  // supers()
  std::span<const uint8_t> sub_mins;    // groups() when has_mins(), else empty
  std::span<const float> super_mins;    // supers() when has_mins(), else empty
};

class PackedMatrix {
 public:
  PackedMatrix() = default;
  // Allocates a zero matrix (every row must then be set with set_row). Throws
  // qf::Error when !supports(bits, group_size, cols), a dimension is < 1, or
  // a parameter of `params` is out of range.
  // With mins every group gets a min (0 until set_row sets it).
  PackedMatrix(int bits, int64_t rows, int64_t cols, int64_t group_size, const GroupParams& params);
  PackedMatrix(int bits, int64_t rows, int64_t cols, int64_t group_size, bool with_mins = false)
      : PackedMatrix(bits, rows, cols, group_size, GroupParams{.mins = with_mins}) {}

  // Whether the kernels handle this shape (see the header comment).
  static bool supports(int bits, int64_t group_size, int64_t cols);

  // Row r of a matrix with float group parameters, from unpacked unsigned
  // codes (cols bytes, each < 2^bits: the codes of quant/row_codec.h), its
  // group scales (groups() finite floats; zero and negative scales are
  // allowed, as GGUF's Q4_0 blocks carry them) and zero points (groups()
  // values < 2^bits; for 8 bits each must be 128; with a uniform zero each
  // must be it, or the span empty); `mins` (groups() finite floats) exactly
  // when has_mins(), else empty.
  // Throws qf::Error naming row and column of a bad code or parameter.
  void set_row(int64_t r, std::span<const uint8_t> codes, std::span<const float> scales,
               std::span<const uint8_t> zeros, std::span<const float> mins = {});
  // Row r of a two-level matrix: codes and zero points as above, the
  // sub-parameters and finite super-parameters in `params`.
  void set_row(int64_t r, std::span<const uint8_t> codes, const TwoLevelRow& params, std::span<const uint8_t> zeros);

  // Row r's weights as floats (cols values): scale * (c - zero) (- min).
  void dequantize_row(int64_t r, std::span<float> out) const;
  // Row r's unsigned codes (cols values), unpacked.
  void unpack_row(int64_t r, std::span<uint8_t> codes) const;
  // Row r's group scales and (has_mins) mins as floats (groups() values), in either form.
  void group_scales(int64_t r, std::span<float> out) const;
  void group_mins(int64_t r, std::span<float> out) const;

  int bits() const { return bits_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t padded_cols() const { return padded_cols_; }
  int64_t group_size() const { return group_size_; }  // min(requested, cols)
  int64_t groups() const { return groups_; }          // per row
  int64_t row_bytes() const { return row_bytes_; }

  const uint8_t* row_codes(int64_t r) const { return codes_.data() + r * row_bytes_; }
  const uint8_t* row_zeros(int64_t r) const { return zeros_.data() + (uniform_zero_ ? 0 : r * groups_); }
  const int32_t* row_sums() const { return row_sums_.data(); }  // 8-bit only, [rows]
  bool has_mins() const { return has_mins_; }
  // False when every stored zero point is 0 (8-bit codes, or a uniform zero 0):
  // the kernels then skip the zero-point term.
  bool has_zero_points() const { return !(bits_ == 8 || (uniform_zero_ && zeros_[0] == 0)); }
  bool uniform_zero() const { return uniform_zero_; }

  // Float group parameters (!two_level()).
  const float* row_scales(int64_t r) const { return scales_.data() + r * groups_; }
  const float* row_mins(int64_t r) const { return mins_.data() + r * groups_; }  // has_mins() only

  // Two-level group parameters (two_level()).
  bool two_level() const { return super_groups_ > 0; }
  int64_t super_groups() const { return super_groups_; }  // groups per super-block
  int64_t supers() const { return supers_; }              // super-blocks per row
  const int8_t* row_sub_scales(int64_t r) const { return sub_scales_.data() + r * groups_; }
  const float* row_super_scales(int64_t r) const { return super_scales_.data() + r * supers_; }
  const uint8_t* row_sub_mins(int64_t r) const { return sub_mins_.data() + r * groups_; }      // has_mins() only
  const float* row_super_mins(int64_t r) const { return super_mins_.data() + r * supers_; }    // has_mins() only

  // Resident bytes: codes, group parameters and row sums.
  size_t bytes() const;

 private:
  void check_row(int64_t r, std::span<const uint8_t> codes, std::span<const uint8_t> zeros) const;
  void store_codes_and_zeros(int64_t r, std::span<const uint8_t> codes, std::span<const uint8_t> zeros);

  int bits_ = 0;
  int64_t rows_ = 0, cols_ = 0, padded_cols_ = 0, group_size_ = 0, groups_ = 0, row_bytes_ = 0;
  int64_t super_groups_ = 0, supers_ = 0;
  bool has_mins_ = false, uniform_zero_ = false;
  AlignedBuffer<uint8_t> codes_;
  AlignedBuffer<float> scales_;
  AlignedBuffer<float> mins_;
  AlignedBuffer<int8_t> sub_scales_;
  AlignedBuffer<float> super_scales_;
  AlignedBuffer<uint8_t> sub_mins_;
  AlignedBuffer<float> super_mins_;
  AlignedBuffer<uint8_t> zeros_;  // [rows, groups], or [groups] with a uniform zero
  AlignedBuffer<int32_t> row_sums_;
};

}  // namespace qf::kernels
