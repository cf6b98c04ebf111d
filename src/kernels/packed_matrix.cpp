#include "kernels/packed_matrix.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"

namespace qf::kernels {
namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Packs one 64-code chunk (unsigned codes) into its 8 * bits bytes.
void pack_chunk(int bits, const uint8_t* c, uint8_t* out) {
  switch (bits) {
    case 8:
      for (int i = 0; i < 64; ++i) out[i] = static_cast<uint8_t>(c[i] ^ 0x80);  // c - 128 as int8
      return;
    case 4:
      for (int i = 0; i < 32; ++i) out[i] = static_cast<uint8_t>(c[i] | c[i + 32] << 4);
      return;
    case 2:
    case 3: {
      for (int i = 0; i < 16; ++i)
        out[i] = static_cast<uint8_t>((c[i] & 3) | (c[i + 16] & 3) << 2 | (c[i + 32] & 3) << 4 | (c[i + 48] & 3) << 6);
      if (bits == 2) return;
      uint64_t high = 0;
      for (int i = 0; i < 64; ++i) high |= static_cast<uint64_t>(c[i] >> 2 & 1) << i;
      for (int i = 0; i < 8; ++i) out[16 + i] = static_cast<uint8_t>(high >> (8 * i));
      return;
    }
  }
}

void unpack_chunk(int bits, const uint8_t* in, uint8_t* c) {
  switch (bits) {
    case 8:
      for (int i = 0; i < 64; ++i) c[i] = static_cast<uint8_t>(in[i] ^ 0x80);
      return;
    case 4:
      for (int i = 0; i < 32; ++i) {
        c[i] = in[i] & 15;
        c[i + 32] = in[i] >> 4;
      }
      return;
    case 2:
    case 3:
      for (int i = 0; i < 64; ++i) c[i] = in[i % 16] >> (2 * (i / 16)) & 3;
      if (bits == 3)
        for (int i = 0; i < 64; ++i) c[i] = static_cast<uint8_t>(c[i] | (in[16 + i / 8] >> (i % 8) & 1) << 2);
      return;
  }
}

}  // namespace

bool PackedMatrix::supports(int bits, int64_t group_size, int64_t cols) {
  const bool bits_ok = bits == 2 || bits == 3 || bits == 4 || bits == 8;
  const bool group_ok =
      group_size == 16 || group_size == 32 || (group_size > 0 && group_size % kChunk == 0) || group_size >= cols;
  return bits_ok && group_size > 0 && group_ok;
}

PackedMatrix::PackedMatrix(int bits, int64_t rows, int64_t cols, int64_t group_size, bool with_mins) {
  QF_CHECK(rows >= 1 && cols >= 1, "packed matrix needs at least one row and column, got {} x {}", rows, cols);
  QF_CHECK(supports(bits, group_size, cols),
           "packed matrix of {} bits with group size {} over {} columns is not supported (bits 2, 3, 4 or 8; group "
           "size 16, 32, a multiple of 64, or >= the columns)",
           bits, group_size, cols);
  bits_ = bits;
  rows_ = rows;
  cols_ = cols;
  padded_cols_ = round_up(cols, kChunk);
  group_size_ = group_size < cols ? group_size : cols;
  groups_ = (cols + group_size_ - 1) / group_size_;
  row_bytes_ = padded_cols_ * bits / 8;
  codes_.resize(static_cast<size_t>(rows_ * row_bytes_));
  scales_.resize(static_cast<size_t>(rows_ * groups_));
  zeros_.resize(static_cast<size_t>(rows_ * groups_));
  has_mins_ = with_mins;
  if (with_mins) mins_.resize(static_cast<size_t>(rows_ * groups_));  // zero-initialized
  if (bits == 8) row_sums_.resize(static_cast<size_t>(rows_));
}

void PackedMatrix::set_row(int64_t r, std::span<const uint8_t> codes, std::span<const float> scales,
                           std::span<const uint8_t> zeros, std::span<const float> mins) {
  QF_CHECK(r >= 0 && r < rows_, "packed matrix row {} outside [0, {})", r, rows_);
  QF_CHECK(static_cast<int64_t>(codes.size()) == cols_, "row {}: {} codes for {} columns", r, codes.size(), cols_);
  QF_CHECK(static_cast<int64_t>(scales.size()) == groups_ && static_cast<int64_t>(zeros.size()) == groups_,
           "row {}: {} scales and {} zero points for {} groups", r, scales.size(), zeros.size(), groups_);
  QF_CHECK(static_cast<int64_t>(mins.size()) == (has_mins_ ? groups_ : 0), "row {}: {} mins for a matrix {}", r,
           mins.size(), has_mins_ ? fmt::format("of {} groups with mins", groups_) : std::string("without mins"));
  const int max_code = (1 << bits_) - 1;
  for (int64_t k = 0; k < cols_; ++k)
    QF_CHECK(codes[k] <= max_code, "row {} column {}: code {} does not fit {} bits", r, k, codes[k], bits_);
  for (int64_t g = 0; g < groups_; ++g) {
    QF_CHECK(std::isfinite(scales[g]), "row {} column {}: group scale {} must be finite",
             r, g * group_size_, scales[g]);
    if (bits_ == 8)
      QF_CHECK(zeros[g] == 128, "row {} column {}: 8-bit codes must be symmetric (zero point 128), got {}", r,
               g * group_size_, zeros[g]);
    else
      QF_CHECK(zeros[g] <= max_code, "row {} column {}: zero point {} does not fit {} bits", r, g * group_size_,
               zeros[g], bits_);
  }

  // Padding codes are 0 (the signed 0, i.e. unsigned 128, for 8 bits) so that they add nothing.
  std::vector<uint8_t> padded(static_cast<size_t>(padded_cols_), bits_ == 8 ? 128 : 0);
  std::copy(codes.begin(), codes.end(), padded.begin());
  uint8_t* row = codes_.data() + r * row_bytes_;
  for (int64_t j = 0; j < padded_cols_ / kChunk; ++j) pack_chunk(bits_, padded.data() + j * kChunk, row + j * 8 * bits_);
  for (size_t g = 0; g < mins.size(); ++g)
    QF_CHECK(std::isfinite(mins[g]), "row {} column {}: group min {} must be finite", r,
             static_cast<int64_t>(g) * group_size_, mins[g]);
  for (int64_t g = 0; g < groups_; ++g) {
    if (has_mins_) mins_[r * groups_ + g] = mins[g];
    scales_[r * groups_ + g] = scales[g];
    zeros_[r * groups_ + g] = bits_ == 8 ? 0 : zeros[g];
  }
  if (bits_ == 8) {
    int32_t sum = 0;
    for (uint8_t c : codes) sum += static_cast<int32_t>(c) - 128;
    row_sums_[r] = sum;
  }
}

void PackedMatrix::unpack_row(int64_t r, std::span<uint8_t> codes) const {
  QF_CHECK(r >= 0 && r < rows_, "packed matrix row {} outside [0, {})", r, rows_);
  QF_CHECK(static_cast<int64_t>(codes.size()) == cols_, "row {}: room for {} codes, expected {}", r, codes.size(),
           cols_);
  uint8_t chunk[kChunk];
  const uint8_t* row = row_codes(r);
  for (int64_t j = 0; j * kChunk < cols_; ++j) {
    unpack_chunk(bits_, row + j * 8 * bits_, chunk);
    for (int64_t i = 0; i < kChunk && j * kChunk + i < cols_; ++i) codes[j * kChunk + i] = chunk[i];
  }
}

void PackedMatrix::dequantize_row(int64_t r, std::span<float> out) const {
  QF_CHECK(static_cast<int64_t>(out.size()) == cols_, "row {}: room for {} weights, expected {}", r, out.size(), cols_);
  std::vector<uint8_t> codes(static_cast<size_t>(cols_));
  unpack_row(r, codes);
  // 8-bit matrices store zero 0 for their signed codes; in unsigned terms the zero point is 128.
  const int offset = bits_ == 8 ? 128 : 0;
  for (int64_t k = 0; k < cols_; ++k) {
    const int64_t g = k / group_size_;
    out[k] = scales_[r * groups_ + g] * static_cast<float>(codes[k] - offset - zeros_[r * groups_ + g]);
    // Subtracted after the product, as ggml's K-quant decoders do (d * sc * q - dmin * m).
    if (has_mins_) out[k] -= mins_[r * groups_ + g];
  }
}

size_t PackedMatrix::bytes() const {
  return codes_.bytes() + scales_.bytes() + zeros_.bytes() + mins_.bytes() + row_sums_.bytes();
}

}  // namespace qf::kernels
