#include "quant/packing.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"

namespace qf::quant {
namespace {

TEST(Packing, PackedBytes) {
  EXPECT_EQ(packed_bytes(0, 4), 0u);
  EXPECT_EQ(packed_bytes(1, 4), 1u);
  EXPECT_EQ(packed_bytes(7, 4), 4u);
  EXPECT_EQ(packed_bytes(8, 3), 3u);
  EXPECT_EQ(packed_bytes(9, 3), 4u);
  EXPECT_EQ(packed_bytes(3, 3), 2u);
  EXPECT_EQ(packed_bytes(9, 1), 2u);
  EXPECT_EQ(packed_bytes(5, 2), 2u);
  EXPECT_EQ(packed_bytes(5, 8), 5u);
  EXPECT_EQ(packed_bytes(4096, 4), 2048u);
  EXPECT_THROW(packed_bytes(4, 0), Error);
  EXPECT_THROW(packed_bytes(4, 9), Error);
}

TEST(Packing, Int4LayoutLowNibbleFirst) {
  const std::vector<uint8_t> codes = {1, 2, 3, 4, 5};
  std::vector<uint8_t> out(3, 0xAA);
  pack_codes(codes, 4, out);
  EXPECT_EQ(out, (std::vector<uint8_t>{0x21, 0x43, 0x05}));  // trailing nibble zeroed
  std::vector<uint8_t> back(5);
  unpack_codes(out, 4, back);
  EXPECT_EQ(back, codes);
}

TEST(Packing, ThreeBitLayoutIsLittleEndianBitStream) {
  // 1 | 2<<3 | 3<<6 | 4<<9 | 5<<12 | 6<<15 | 7<<18 | 0<<21 = 0x1F58D1
  const std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 0};
  std::vector<uint8_t> out(3);
  pack_codes(codes, 3, out);
  EXPECT_EQ(out, (std::vector<uint8_t>{0xD1, 0x58, 0x1F}));
  // A ragged row: 7 | 1<<3 | 6<<6 = 0x18F over two bytes.
  const std::vector<uint8_t> ragged = {7, 1, 6};
  std::vector<uint8_t> out2(2);
  pack_codes(ragged, 3, out2);
  EXPECT_EQ(out2, (std::vector<uint8_t>{0x8F, 0x01}));
  std::vector<uint8_t> back(3);
  unpack_codes(out2, 3, back);
  EXPECT_EQ(back, ragged);
}

TEST(Packing, TwoBitAndOneBitLayouts) {
  std::vector<uint8_t> out(2);
  pack_codes(std::vector<uint8_t>{1, 2, 3, 0, 2}, 2, out);  // 01 | 10<<2 | 11<<4 | 00<<6 = 0x39
  EXPECT_EQ(out, (std::vector<uint8_t>{0x39, 0x02}));
  pack_codes(std::vector<uint8_t>{1, 0, 1, 1, 0, 0, 0, 1, 1}, 1, out);
  EXPECT_EQ(out, (std::vector<uint8_t>{0x8D, 0x01}));
}

TEST(Packing, RandomRoundTripsEveryWidth) {
  std::mt19937 rng(42);
  for (int bits = 1; bits <= 8; ++bits) {
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{7}, size_t{8}, size_t{9},
                     size_t{15}, size_t{17}, size_t{31}, size_t{33}, size_t{63}, size_t{1001}}) {
      std::vector<uint8_t> codes(n);
      for (auto& c : codes) c = static_cast<uint8_t>(code(rng));
      const size_t bytes = packed_bytes(static_cast<int64_t>(n), bits);
      EXPECT_EQ(bytes, (n * bits + 7) / 8);
      std::vector<uint8_t> packed(bytes + 3, 0xFF);  // extra bytes must stay untouched
      pack_codes(codes, bits, packed);
      for (size_t i = bytes; i < packed.size(); ++i) ASSERT_EQ(packed[i], 0xFF) << bits << " bits, n=" << n;
      // Padding bits of the last byte are zero.
      if (n * bits % 8) {
        ASSERT_EQ(packed[bytes - 1] >> (n * bits % 8), 0) << bits << " bits, n=" << n;
      }
      std::vector<uint8_t> back(n);
      unpack_codes(std::span<const uint8_t>(packed).first(bytes), bits, back);
      ASSERT_EQ(back, codes) << bits << " bits, n=" << n;
    }
  }
}

TEST(Packing, MatchesBitByBitReference) {
  std::mt19937 rng(7);
  for (int bits = 1; bits <= 8; ++bits) {
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    std::vector<uint8_t> codes(77);
    for (auto& c : codes) c = static_cast<uint8_t>(code(rng));
    std::vector<uint8_t> expected(packed_bytes(77, bits), 0);
    for (size_t i = 0; i < codes.size(); ++i) {
      for (int b = 0; b < bits; ++b) {
        const size_t bit = i * bits + b;
        if ((codes[i] >> b) & 1) expected[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
      }
    }
    std::vector<uint8_t> packed(expected.size());
    pack_codes(codes, bits, packed);
    EXPECT_EQ(packed, expected) << bits << " bits";
  }
}

TEST(Packing, RejectsBadInput) {
  std::vector<uint8_t> out(4);
  EXPECT_THROW(pack_codes(std::vector<uint8_t>{16}, 4, out), Error);  // does not fit 4 bits
  EXPECT_THROW(pack_codes(std::vector<uint8_t>{8}, 3, out), Error);
  std::vector<uint8_t> small(1);
  EXPECT_THROW(pack_codes(std::vector<uint8_t>{1, 2, 3}, 4, small), Error);  // needs 2 bytes
  std::vector<uint8_t> codes(3);
  EXPECT_THROW(unpack_codes(small, 4, codes), Error);
  EXPECT_THROW(pack_codes(std::vector<uint8_t>{1}, 0, out), Error);
}

}  // namespace
}  // namespace qf::quant
