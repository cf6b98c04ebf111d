#include "kernels/packed_matrix.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/two_level.h"

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

PackedMatrix::PackedMatrix(int bits, int64_t rows, int64_t cols, int64_t group_size, const GroupParams& params) {
  QF_CHECK(rows >= 1 && cols >= 1, "packed matrix needs at least one row and column, got {} x {}", rows, cols);
  QF_CHECK(supports(bits, group_size, cols),
           "packed matrix of {} bits with group size {} over {} columns is not supported (bits 2, 3, 4 or 8; group "
           "size 16, 32, a multiple of 64, or >= the columns)",
           bits, group_size, cols);
  QF_CHECK(params.super_groups >= 0, "packed matrix: {} groups per super-block", params.super_groups);
  QF_CHECK(params.uniform_zero < 0 || (bits == 8 ? params.uniform_zero == 128 : params.uniform_zero < (1 << bits)),
           "packed matrix: uniform zero point {} does not fit {} bits{}", params.uniform_zero, bits,
           bits == 8 ? " (8-bit codes are symmetric: 128)" : "");
  bits_ = bits;
  rows_ = rows;
  cols_ = cols;
  padded_cols_ = round_up(cols, kChunk);
  group_size_ = group_size < cols ? group_size : cols;
  groups_ = (cols + group_size_ - 1) / group_size_;
  row_bytes_ = padded_cols_ * bits / 8;
  has_mins_ = params.mins;
  uniform_zero_ = params.uniform_zero >= 0;
  super_groups_ = params.super_groups;
  codes_.resize(static_cast<size_t>(rows_ * row_bytes_));
  const auto per_row = static_cast<size_t>(rows_ * groups_);
  if (uniform_zero_) {
    zeros_.resize(static_cast<size_t>(groups_));
    std::fill(zeros_.data(), zeros_.data() + groups_, static_cast<uint8_t>(bits == 8 ? 0 : params.uniform_zero));
  } else {
    zeros_.resize(per_row);
  }
  if (two_level()) {
    supers_ = (groups_ + super_groups_ - 1) / super_groups_;
    sub_scales_.resize(per_row);
    super_scales_.resize(static_cast<size_t>(rows_ * supers_));
    if (has_mins_) {
      sub_mins_.resize(per_row);
      super_mins_.resize(static_cast<size_t>(rows_ * supers_));
    }
  } else {
    scales_.resize(per_row);
    if (has_mins_) mins_.resize(per_row);  // zero-initialized
  }
  if (bits == 8) row_sums_.resize(static_cast<size_t>(rows_));
}

void PackedMatrix::check_row(int64_t r, std::span<const uint8_t> codes, std::span<const uint8_t> zeros) const {
  QF_CHECK(r >= 0 && r < rows_, "packed matrix row {} outside [0, {})", r, rows_);
  QF_CHECK(static_cast<int64_t>(codes.size()) == cols_, "row {}: {} codes for {} columns", r, codes.size(), cols_);
  QF_CHECK(static_cast<int64_t>(zeros.size()) == groups_ || (uniform_zero_ && zeros.empty()),
           "row {}: {} zero points for {} groups", r, zeros.size(), groups_);
  const int max_code = (1 << bits_) - 1;
  for (int64_t k = 0; k < cols_; ++k)
    QF_CHECK(codes[k] <= max_code, "row {} column {}: code {} does not fit {} bits", r, k, codes[k], bits_);
  const int uniform = bits_ == 8 ? 128 : zeros_[0];
  for (size_t g = 0; g < zeros.size(); ++g) {
    const int64_t col = static_cast<int64_t>(g) * group_size_;
    if (bits_ == 8)
      QF_CHECK(zeros[g] == 128, "row {} column {}: 8-bit codes must be symmetric (zero point 128), got {}", r, col,
               zeros[g]);
    else
      QF_CHECK(zeros[g] <= max_code, "row {} column {}: zero point {} does not fit {} bits", r, col, zeros[g], bits_);
    if (uniform_zero_)
      QF_CHECK(zeros[g] == uniform, "row {} column {}: zero point {} in a matrix whose zero point is {}", r, col,
               zeros[g], uniform);
  }
}

void PackedMatrix::store_codes_and_zeros(int64_t r, std::span<const uint8_t> codes, std::span<const uint8_t> zeros) {
  // Padding codes are 0 (the signed 0, i.e. unsigned 128, for 8 bits) so that they add nothing.
  std::vector<uint8_t> padded(static_cast<size_t>(padded_cols_), bits_ == 8 ? 128 : 0);
  std::copy(codes.begin(), codes.end(), padded.begin());
  uint8_t* row = codes_.data() + r * row_bytes_;
  for (int64_t j = 0; j < padded_cols_ / kChunk; ++j) pack_chunk(bits_, padded.data() + j * kChunk, row + j * 8 * bits_);
  if (!uniform_zero_)
    for (int64_t g = 0; g < groups_; ++g) zeros_[r * groups_ + g] = bits_ == 8 ? 0 : zeros[g];
  if (bits_ == 8) {
    int32_t sum = 0;
    for (uint8_t c : codes) sum += static_cast<int32_t>(c) - 128;
    row_sums_[r] = sum;
  }
}

void PackedMatrix::set_row(int64_t r, std::span<const uint8_t> codes, std::span<const float> scales,
                           std::span<const uint8_t> zeros, std::span<const float> mins) {
  QF_CHECK(!two_level(), "row {}: float scales for a matrix with two-level scales", r);
  check_row(r, codes, zeros);
  QF_CHECK(static_cast<int64_t>(scales.size()) == groups_, "row {}: {} scales for {} groups", r, scales.size(),
           groups_);
  QF_CHECK(static_cast<int64_t>(mins.size()) == (has_mins_ ? groups_ : 0), "row {}: {} mins for a matrix {}", r,
           mins.size(), has_mins_ ? fmt::format("of {} groups with mins", groups_) : std::string("without mins"));
  for (int64_t g = 0; g < groups_; ++g)
    QF_CHECK(std::isfinite(scales[g]), "row {} column {}: group scale {} must be finite", r, g * group_size_,
             scales[g]);
  for (size_t g = 0; g < mins.size(); ++g)
    QF_CHECK(std::isfinite(mins[g]), "row {} column {}: group min {} must be finite", r,
             static_cast<int64_t>(g) * group_size_, mins[g]);
  store_codes_and_zeros(r, codes, zeros);
  for (int64_t g = 0; g < groups_; ++g) {
    if (has_mins_) mins_[r * groups_ + g] = mins[g];
    scales_[r * groups_ + g] = scales[g];
  }
}

void PackedMatrix::set_row(int64_t r, std::span<const uint8_t> codes, const TwoLevelRow& p,
                           std::span<const uint8_t> zeros) {
  QF_CHECK(two_level(), "row {}: two-level scales for a matrix with float scales", r);
  check_row(r, codes, zeros);
  const auto groups = static_cast<size_t>(groups_), supers = static_cast<size_t>(supers_);
  QF_CHECK(p.sub_scales.size() == groups && p.super_scales.size() == supers,
           "row {}: {} sub-scales and {} super-scales for {} groups in {} super-blocks", r, p.sub_scales.size(),
           p.super_scales.size(), groups, supers);
  const size_t want_sub = has_mins_ ? groups : 0, want_super = has_mins_ ? supers : 0;
  QF_CHECK(p.sub_mins.size() == want_sub && p.super_mins.size() == want_super,
           "row {}: {} sub-mins and {} super-mins for a matrix {}", r, p.sub_mins.size(), p.super_mins.size(),
           has_mins_ ? fmt::format("of {} groups in {} super-blocks with mins", groups, supers)
                     : std::string("without mins"));
  for (size_t b = 0; b < supers; ++b) {
    const int64_t col = static_cast<int64_t>(b) * super_groups_ * group_size_;
    QF_CHECK(std::isfinite(p.super_scales[b]), "row {} column {}: super-scale {} must be finite", r, col,
             p.super_scales[b]);
    if (has_mins_)
      QF_CHECK(std::isfinite(p.super_mins[b]), "row {} column {}: super-min {} must be finite", r, col,
               p.super_mins[b]);
  }
  store_codes_and_zeros(r, codes, zeros);
  std::copy(p.sub_scales.begin(), p.sub_scales.end(), sub_scales_.data() + r * groups_);
  std::copy(p.super_scales.begin(), p.super_scales.end(), super_scales_.data() + r * supers_);
  if (has_mins_) {
    std::copy(p.sub_mins.begin(), p.sub_mins.end(), sub_mins_.data() + r * groups_);
    std::copy(p.super_mins.begin(), p.super_mins.end(), super_mins_.data() + r * supers_);
  }
}

void PackedMatrix::group_scales(int64_t r, std::span<float> out) const {
  QF_CHECK(r >= 0 && r < rows_, "packed matrix row {} outside [0, {})", r, rows_);
  QF_CHECK(static_cast<int64_t>(out.size()) == groups_, "row {}: room for {} scales, expected {}", r, out.size(),
           groups_);
  if (two_level())
    detail::form_two_level(row_sub_scales(r), row_super_scales(r), groups_, super_groups_, out.data());
  else
    std::copy(row_scales(r), row_scales(r) + groups_, out.begin());
}

void PackedMatrix::group_mins(int64_t r, std::span<float> out) const {
  QF_CHECK(r >= 0 && r < rows_, "packed matrix row {} outside [0, {})", r, rows_);
  QF_CHECK(has_mins_, "row {}: group mins of a matrix without mins", r);
  QF_CHECK(static_cast<int64_t>(out.size()) == groups_, "row {}: room for {} mins, expected {}", r, out.size(),
           groups_);
  if (two_level())
    detail::form_two_level(row_sub_mins(r), row_super_mins(r), groups_, super_groups_, out.data());
  else
    std::copy(row_mins(r), row_mins(r) + groups_, out.begin());
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
  std::vector<float> scales(static_cast<size_t>(groups_)), mins(has_mins_ ? static_cast<size_t>(groups_) : 0);
  group_scales(r, scales);
  if (has_mins_) group_mins(r, mins);
  const uint8_t* zeros = row_zeros(r);
  // 8-bit matrices store zero 0 for their signed codes; in unsigned terms the zero point is 128.
  const int offset = bits_ == 8 ? 128 : 0;
  for (int64_t k = 0; k < cols_; ++k) {
    const auto g = static_cast<size_t>(k / group_size_);
    out[k] = scales[g] * static_cast<float>(codes[k] - offset - zeros[g]);
    // Subtracted after the product, as ggml's K-quant decoders do (d * sc * q - dmin * m).
    if (has_mins_) out[k] -= mins[g];
  }
}

size_t PackedMatrix::bytes() const {
  return codes_.bytes() + scales_.bytes() + zeros_.bytes() + mins_.bytes() + sub_scales_.bytes() +
         super_scales_.bytes() + sub_mins_.bytes() + super_mins_.bytes() + row_sums_.bytes();
}

}  // namespace qf::kernels
