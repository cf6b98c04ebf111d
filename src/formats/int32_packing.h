// Integer codes packed into int32 words, the way the GPTQ, AWQ and
// compressed-tensors checkpoints store them. Codes are unsigned (0 .. 2^bits-1),
// one byte each when unpacked; a matrix is packed along its rows (each row a
// sequence of words), callers transpose for the layouts packed along columns.
//
//   Stream       the row is one little-endian bit stream over its words: code i
//                at stream bits [i*bits, (i+1)*bits), stream bit j being bit
//                j % 32 of word j / 32. For 2/4/8 bits a word holds 32/bits whole
//                codes; 3-bit codes run across word boundaries (AutoGPTQ's
//                3-bit scheme: 32 codes in 3 words).
//   WordAligned  32/bits codes per word at bits [i*bits, (i+1)*bits), the
//                rest of the word unused (compressed-tensors' pack_to_int32;
//                the same as Stream for 2/4/8 bits, 10 codes per word for 3).
//   AwqOrder     4 bits only: word k holds codes 8k .. 8k+7 with nibble i
//                holding code 8k + kAwqOrder[i] (AutoAWQ's GEMM layout).
// Codes past the end of a row are written as zero and ignored on reading.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace qf::formats {

enum class Int32Layout { Stream, WordAligned, AwqOrder };

inline constexpr std::array<int, 8> kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7};

// Words a row of `count` codes of width `bits` takes.
int64_t int32_words(int64_t count, int bits, Int32Layout layout);

// codes: rows x cols, row-major; returns rows x words_per_row int32 words,
// where words_per_row >= int32_words(cols, bits, layout). Throws qf::Error
// for a code >= 2^bits.
std::vector<int32_t> pack_int32_rows(std::span<const uint8_t> codes, int64_t rows, int64_t cols, int bits,
                                     Int32Layout layout, int64_t words_per_row);
// The inverse: rows x cols codes from rows x words_per_row words.
std::vector<uint8_t> unpack_int32_rows(std::span<const int32_t> words, int64_t rows, int64_t cols, int bits,
                                       Int32Layout layout, int64_t words_per_row);

// Row-major transpose of a rows x cols matrix.
template <typename T>
std::vector<T> transposed(std::span<const T> m, int64_t rows, int64_t cols) {
  std::vector<T> out(m.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[static_cast<size_t>(c * rows + r)] = m[static_cast<size_t>(r * cols + c)];
  return out;
}

}  // namespace qf::formats
