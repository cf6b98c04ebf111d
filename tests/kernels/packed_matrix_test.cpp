#include "kernels/packed_matrix.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

#include "error_of.h"
#include "kernel_test_util.h"

namespace qf::kernels {
namespace {

struct Shape {
  int bits;
  int64_t cols;
  int64_t group_size;
};

class PackedRoundTrip : public ::testing::TestWithParam<Shape> {};

TEST_P(PackedRoundTrip, UnpackAndDequantizeReturnWhatSetRowStored) {
  const Shape s = GetParam();
  std::mt19937 rng(static_cast<unsigned>(s.bits * 1000 + s.cols + s.group_size));
  const test::TestMatrix t = test::random_matrix(rng, s.bits, 5, s.cols, s.group_size, false);
  const PackedMatrix& p = t.packed;
  const int64_t gs = std::min(s.group_size, s.cols);
  EXPECT_EQ(p.group_size(), gs);
  EXPECT_EQ(p.groups(), (s.cols + gs - 1) / gs);
  EXPECT_EQ(p.padded_cols() % kChunk, 0);
  EXPECT_EQ(p.row_bytes(), p.padded_cols() * s.bits / 8);
  std::vector<uint8_t> codes(static_cast<size_t>(s.cols));
  std::vector<float> w(static_cast<size_t>(s.cols));
  for (int64_t r = 0; r < p.rows(); ++r) {
    p.unpack_row(r, codes);
    EXPECT_EQ(codes, t.codes[r]) << "row " << r;
    p.dequantize_row(r, w);
    int32_t sum = 0;
    for (int64_t k = 0; k < s.cols; ++k) {
      const int64_t g = k / gs;
      const float expected = t.scales[r][g] * static_cast<float>(int{t.codes[r][k]} - int{t.zeros[r][g]});
      ASSERT_EQ(w[k], expected) << "row " << r << " col " << k;
      sum += int{t.codes[r][k]} - 128;
    }
    if (s.bits == 8) {
      EXPECT_EQ(p.row_sums()[r], sum);
      EXPECT_EQ(p.row_zeros(r)[0], 0);  // signed codes: the stored zero point is 0
    }
  }
}

TEST_P(PackedRoundTrip, PaddingCodesAreZero) {
  const Shape s = GetParam();
  std::mt19937 rng(7);
  const test::TestMatrix t = test::random_matrix(rng, s.bits, 2, s.cols, s.group_size, false);
  const PackedMatrix& p = t.packed;
  // A matrix whose real codes are all 0 (signed 0 for 8 bits) must be all-zero bytes, padding included.
  PackedMatrix zero(s.bits, 1, s.cols, s.group_size);
  std::vector<uint8_t> c(static_cast<size_t>(s.cols), s.bits == 8 ? 128 : 0);
  std::vector<float> sc(static_cast<size_t>(p.groups()), 1.0f);
  std::vector<uint8_t> z(static_cast<size_t>(p.groups()), s.bits == 8 ? 128 : 1);
  zero.set_row(0, c, sc, z);
  for (int64_t i = 0; i < zero.row_bytes(); ++i) ASSERT_EQ(zero.row_codes(0)[i], 0) << "byte " << i;
}

std::vector<Shape> shapes() {
  std::vector<Shape> out;
  for (int bits : {2, 3, 4, 8})
    for (int64_t cols : {1, 31, 64, 100, 200, 257, 1000})
      for (int64_t gs : {16, 32, 64, 128, 1 << 20}) out.push_back({bits, cols, gs});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PackedRoundTrip, ::testing::ValuesIn(shapes()),
                         [](const ::testing::TestParamInfo<Shape>& i) {
                           const Shape& s = i.param;
                           return s.group_size >= (1 << 20) ? fmt::format("b{}_k{}_grow", s.bits, s.cols)
                                                            : fmt::format("b{}_k{}_g{}", s.bits, s.cols, s.group_size);
                         });

TEST(PackedMatrix, LayoutOfOneChunkMatchesTheHeader) {
  std::vector<uint8_t> c(64);
  for (int i = 0; i < 64; ++i) c[i] = static_cast<uint8_t>(i % 16);
  std::vector<float> s{1.0f};
  std::vector<uint8_t> z{0};
  PackedMatrix p4(4, 1, 64, 64);
  p4.set_row(0, c, s, z);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(p4.row_codes(0)[i], c[i] | c[i + 32] << 4);
  for (auto& v : c) v &= 7;
  PackedMatrix p3(3, 1, 64, 64);
  p3.set_row(0, c, s, z);
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(p3.row_codes(0)[i], (c[i] & 3) | (c[i + 16] & 3) << 2 | (c[i + 32] & 3) << 4 | (c[i + 48] & 3) << 6);
  uint64_t high = 0;
  std::memcpy(&high, p3.row_codes(0) + 16, 8);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(high >> i & 1, uint64_t{c[i] >> 2 & 1u}) << i;
  std::vector<uint8_t> z8{128};
  for (int i = 0; i < 64; ++i) c[i] = static_cast<uint8_t>(i * 4);
  PackedMatrix p8(8, 1, 64, 64);
  p8.set_row(0, c, s, z8);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(static_cast<int8_t>(p8.row_codes(0)[i]), i * 4 - 128);
}

TEST(PackedMatrix, Supports) {
  EXPECT_TRUE(PackedMatrix::supports(4, 32, 4096));
  EXPECT_TRUE(PackedMatrix::supports(4, 192, 4096));
  EXPECT_TRUE(PackedMatrix::supports(3, 5000, 4096));
  EXPECT_TRUE(PackedMatrix::supports(2, 100, 100));
  EXPECT_TRUE(PackedMatrix::supports(4, 16, 4096));
  EXPECT_TRUE(PackedMatrix::supports(8, 16, 4096));
  EXPECT_FALSE(PackedMatrix::supports(4, 8, 4096));
  EXPECT_FALSE(PackedMatrix::supports(8, 48, 4096));
  EXPECT_FALSE(PackedMatrix::supports(4, 100, 4096));
  EXPECT_FALSE(PackedMatrix::supports(5, 64, 4096));
  EXPECT_FALSE(PackedMatrix::supports(4, 0, 4096));
}

TEST(PackedMatrix, BadArgumentsThrowClearErrors) {
  using qf::test::expect_error;
  expect_error([] { PackedMatrix(5, 2, 64, 64); }, {"5 bits", "not supported"});
  expect_error([] { PackedMatrix(4, 2, 4096, 48); }, {"group size 48"});
  expect_error([] { PackedMatrix(4, 0, 64, 64); }, {"at least one row"});
  PackedMatrix p(4, 2, 100, 64);
  std::vector<uint8_t> c(100, 1), z(2, 8);
  std::vector<float> s(2, 0.5f);
  expect_error([&] { p.set_row(2, c, s, z); }, {"row 2"});
  c[70] = 16;
  expect_error([&] { p.set_row(1, c, s, z); }, {"row 1 column 70", "code 16"});
  c[70] = 1;
  s[1] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { p.set_row(0, c, s, z); }, {"row 0 column 64", "scale"});
  s[1] = std::numeric_limits<float>::infinity();
  expect_error([&] { p.set_row(0, c, s, z); }, {"row 0 column 64", "scale"});
  // GGUF's Q4_0 blocks carry zero and negative scales (ggml's d = max / -8).
  s = {0.0f, -0.5f};
  p.set_row(0, c, s, z);
  std::vector<float> w(100);
  p.dequantize_row(0, w);
  EXPECT_EQ(w[0], 0.0f);
  EXPECT_EQ(w[64], -0.5f * (1 - 8));
  s[1] = 0.5f;
  z[0] = 16;
  expect_error([&] { p.set_row(0, c, s, z); }, {"zero point 16"});
  expect_error([&] { p.set_row(0, std::span(c).first(99), s, z); }, {"99 codes"});
  PackedMatrix p8(8, 1, 64, 64);
  std::vector<uint8_t> c8(64, 1), z8{127};
  std::vector<float> s8{1.0f};
  expect_error([&] { p8.set_row(0, c8, s8, z8); }, {"symmetric", "128"});
  // Mins: exactly one per group on a matrix with mins, none on one without.
  z = {8, 8};
  const std::vector<float> mins = {0.25f, -1.0f};
  expect_error([&] { p.set_row(0, c, s, z, mins); }, {"2 mins", "without mins"});
  PackedMatrix pm(4, 1, 100, 64, true);
  expect_error([&] { pm.set_row(0, c, s, z); }, {"0 mins", "2 groups with mins"});
  const std::vector<float> bad = {0.0f, std::numeric_limits<float>::infinity()};
  expect_error([&] { pm.set_row(0, c, s, z, bad); }, {"row 0 column 64", "min"});
}

TEST(PackedMatrix, MinsAreSubtractedAfterTheScaledCodes) {
  std::mt19937 rng(12);
  for (int bits : {2, 3, 4, 8})
    for (int64_t gs : {16, 32, 128}) {
      const test::TestMatrix t = test::random_matrix(rng, bits, 3, 200, gs, false, true);
      ASSERT_TRUE(t.packed.has_mins());
      EXPECT_EQ(t.packed.bytes(), test::random_matrix(rng, bits, 3, 200, gs, false).packed.bytes() +
                                      static_cast<size_t>(3 * t.packed.groups()) * sizeof(float));
      std::vector<float> w(200);
      for (int64_t r = 0; r < 3; ++r) {
        t.packed.dequantize_row(r, w);
        for (int64_t k = 0; k < 200; ++k) {
          const int64_t g = k / gs;
          const float expected =
              t.scales[r][g] * static_cast<float>(int{t.codes[r][k]} - int{t.zeros[r][g]}) - t.mins[r][g];
          ASSERT_EQ(w[k], expected) << "bits " << bits << " group " << gs << " row " << r << " col " << k;
        }
      }
    }
}

// Two-level parameters: every weight is (super * sub) * (c - z) - super_min * sub_min
// with both products formed in float, the group parameters read back as those
// floats, and the matrix is smaller than its float twin by exactly the
// parameter bytes the header counts.
TEST(PackedMatrix, TwoLevelParametersDequantizeAsSuperTimesSub) {
  std::mt19937 rng(21);
  for (int bits : {2, 3, 4, 8})
    for (int64_t gs : {16, 32, 128})
      for (int64_t per : {8, 16, 3})
        for (bool mins : {false, true}) {
          const int64_t rows = 3, cols = 1000;
          const int zero = bits == 8 ? 128 : 1 << (bits - 1);
          const test::TwoLevelMatrix m = test::random_two_level_matrix(rng, bits, rows, cols, gs, per, false, mins, zero);
          const PackedMatrix& p = m.t.packed;
          ASSERT_TRUE(p.two_level());
          EXPECT_TRUE(p.uniform_zero());
          EXPECT_EQ(p.super_groups(), per);
          EXPECT_EQ(p.supers(), (p.groups() + per - 1) / per);
          std::vector<float> w(cols), tw(cols), s(static_cast<size_t>(p.groups())), mn(s.size());
          for (int64_t r = 0; r < rows; ++r) {
            p.group_scales(r, s);
            EXPECT_EQ(s, m.t.scales[r]);
            if (mins) {
              p.group_mins(r, mn);
              EXPECT_EQ(mn, m.t.mins[r]);
            }
            for (int64_t g = 0; g < p.groups(); ++g)
              ASSERT_EQ(s[g], p.row_super_scales(r)[g / per] * static_cast<float>(p.row_sub_scales(r)[g]));
            p.dequantize_row(r, w);
            m.twin.dequantize_row(r, tw);
            ASSERT_EQ(w, tw) << "bits " << bits << " group " << gs << " per " << per << " row " << r;
          }
          const size_t groups = static_cast<size_t>(rows * p.groups()), supers = static_cast<size_t>(rows * p.supers());
          const size_t twin_params = groups * (sizeof(float) + 1) + (mins ? groups * sizeof(float) : 0);
          const size_t params = groups + supers * sizeof(float) + (mins ? groups + supers * sizeof(float) : 0) +
                                static_cast<size_t>(p.groups());  // one row of zero points
          EXPECT_EQ(p.bytes() + twin_params, m.twin.bytes() + params);
        }
}

TEST(PackedMatrix, UniformZeroIsStoredOnceAndChecked) {
  using qf::test::expect_error;
  PackedMatrix p(4, 3, 128, 32, GroupParams{.uniform_zero = 8});
  PackedMatrix full(4, 3, 128, 32);
  EXPECT_EQ(full.bytes() - p.bytes(), 3 * 4u - 4u);  // zero points: one row instead of three
  std::vector<uint8_t> c(128, 3), z(4, 8);
  std::vector<float> s(4, 0.5f);
  p.set_row(0, c, s, z);
  p.set_row(1, c, s, {});  // empty: the matrix's zero point
  EXPECT_EQ(p.row_zeros(0), p.row_zeros(2));
  std::vector<float> w(128);
  p.dequantize_row(1, w);
  EXPECT_EQ(w[0], 0.5f * (3 - 8));
  EXPECT_TRUE(p.has_zero_points());
  EXPECT_FALSE(PackedMatrix(4, 1, 64, 32, GroupParams{.uniform_zero = 0}).has_zero_points());
  EXPECT_FALSE(PackedMatrix(8, 1, 64, 32).has_zero_points());
  z[2] = 7;
  expect_error([&] { p.set_row(2, c, s, z); }, {"row 2 column 64", "zero point 7", "is 8"});
  expect_error([] { PackedMatrix(4, 1, 64, 32, GroupParams{.uniform_zero = 16}); }, {"uniform zero point 16"});
  expect_error([] { PackedMatrix(8, 1, 64, 32, GroupParams{.uniform_zero = 0}); }, {"uniform zero point 0", "128"});
  PackedMatrix none(4, 1, 64, 32);
  expect_error([&] { none.set_row(0, std::span(c).first(64), std::span(s).first(2), {}); }, {"0 zero points"});
}

TEST(PackedMatrix, TwoLevelBadArgumentsThrowClearErrors) {
  using qf::test::expect_error;
  PackedMatrix p(4, 2, 512, 32, GroupParams{.mins = true, .super_groups = 8, .uniform_zero = 0});
  std::vector<uint8_t> c(512, 1), sub_min(16, 2);
  std::vector<int8_t> sub(16, -3);
  std::vector<float> sup = {0.5f, 0.25f}, sup_min = {0.125f, 1.0f}, s(16, 1.0f);
  p.set_row(0, c, TwoLevelRow{sub, sup, sub_min, sup_min}, {});
  std::vector<float> w(512);
  p.dequantize_row(0, w);
  EXPECT_EQ(w[0], 0.5f * -3.0f * 1.0f - 0.125f * 2.0f);
  EXPECT_EQ(w[300], 0.25f * -3.0f * 1.0f - 1.0f * 2.0f);
  expect_error([&] { p.set_row(0, c, s, {}, s); }, {"float scales", "two-level"});
  PackedMatrix f(4, 1, 512, 32);
  expect_error([&] { f.set_row(0, c, TwoLevelRow{sub, sup, {}, {}}, std::vector<uint8_t>(16, 0)); },
               {"two-level scales for a matrix with float scales"});
  expect_error([&] { p.set_row(1, c, TwoLevelRow{std::span(sub).first(15), sup, sub_min, sup_min}, {}); },
               {"15 sub-scales", "16 groups in 2 super-blocks"});
  expect_error([&] { p.set_row(1, c, TwoLevelRow{sub, sup, {}, {}}, {}); }, {"0 sub-mins", "with mins"});
  sup[1] = std::numeric_limits<float>::infinity();
  expect_error([&] { p.set_row(1, c, TwoLevelRow{sub, sup, sub_min, sup_min}, {}); }, {"row 1 column 256", "super-scale"});
  sup[1] = 1.0f;
  sup_min[0] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { p.set_row(1, c, TwoLevelRow{sub, sup, sub_min, sup_min}, {}); }, {"row 1 column 0", "super-min"});
  std::vector<float> mn(16);
  expect_error([&] { f.group_mins(0, mn); }, {"without mins"});
}

}  // namespace
}  // namespace qf::kernels
