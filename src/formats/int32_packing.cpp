#include "formats/int32_packing.h"

#include "core/error.h"

namespace qf::formats {
namespace {

void check_args(int bits, Int32Layout layout) {
  QF_CHECK(bits >= 1 && bits <= 8, "int32 packing of {}-bit codes (valid: 1..8)", bits);
  QF_CHECK(layout != Int32Layout::AwqOrder || bits == 4, "the AWQ order packs 4-bit codes, not {}-bit", bits);
}

// Bit position of code i in the row, in bits from the row's first word.
int64_t bit_of(int64_t i, int bits, Int32Layout layout) {
  switch (layout) {
    case Int32Layout::Stream: return i * bits;
    case Int32Layout::WordAligned: {
      const int64_t per_word = 32 / bits;
      return (i / per_word) * 32 + (i % per_word) * bits;
    }
    case Int32Layout::AwqOrder: {
      // Code 8k + kAwqOrder[n] sits in nibble n of word k.
      static constexpr std::array<int, 8> kNibbleOf = {0, 4, 1, 5, 2, 6, 3, 7};
      return (i / 8) * 32 + kNibbleOf[static_cast<size_t>(i % 8)] * 4;
    }
  }
  return 0;
}

}  // namespace

int64_t int32_words(int64_t count, int bits, Int32Layout layout) {
  check_args(bits, layout);
  if (layout == Int32Layout::Stream) return (count * bits + 31) / 32;
  const int64_t per_word = 32 / bits;
  return (count + per_word - 1) / per_word;
}

std::vector<int32_t> pack_int32_rows(std::span<const uint8_t> codes, int64_t rows, int64_t cols, int bits,
                                     Int32Layout layout, int64_t words_per_row) {
  QF_CHECK(static_cast<int64_t>(codes.size()) == rows * cols, "{} codes for a {} x {} matrix", codes.size(), rows,
           cols);
  QF_CHECK(words_per_row >= int32_words(cols, bits, layout), "{} words cannot hold a row of {} {}-bit codes",
           words_per_row, cols, bits);
  std::vector<uint32_t> out(static_cast<size_t>(rows * words_per_row), 0u);
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t r = 0; r < rows; ++r) {
    uint32_t* row = out.data() + r * words_per_row;
    for (int64_t i = 0; i < cols; ++i) {
      const uint32_t v = codes[static_cast<size_t>(r * cols + i)];
      QF_CHECK(v <= mask, "code {} at [{}, {}] does not fit {} bits", v, r, i, bits);
      const int64_t bit = bit_of(i, bits, layout);
      const int shift = static_cast<int>(bit % 32);
      row[bit / 32] |= v << shift;
      if (shift + bits > 32) row[bit / 32 + 1] |= v >> (32 - shift);  // a 3-bit code across two words
    }
  }
  std::vector<int32_t> result(out.size());
  for (size_t i = 0; i < out.size(); ++i) result[i] = static_cast<int32_t>(out[i]);
  return result;
}

std::vector<uint8_t> unpack_int32_rows(std::span<const int32_t> words, int64_t rows, int64_t cols, int bits,
                                       Int32Layout layout, int64_t words_per_row) {
  QF_CHECK(static_cast<int64_t>(words.size()) == rows * words_per_row, "{} words for {} rows of {}", words.size(),
           rows, words_per_row);
  QF_CHECK(words_per_row >= int32_words(cols, bits, layout), "{} words cannot hold a row of {} {}-bit codes",
           words_per_row, cols, bits);
  std::vector<uint8_t> out(static_cast<size_t>(rows * cols));
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* row = words.data() + r * words_per_row;
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t bit = bit_of(i, bits, layout);
      const int shift = static_cast<int>(bit % 32);
      uint32_t v = static_cast<uint32_t>(row[bit / 32]) >> shift;
      if (shift + bits > 32) v |= static_cast<uint32_t>(row[bit / 32 + 1]) << (32 - shift);
      out[static_cast<size_t>(r * cols + i)] = static_cast<uint8_t>(v & mask);
    }
  }
  return out;
}

}  // namespace qf::formats
