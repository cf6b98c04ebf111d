// The scalar reference against a double-precision product of the dequantized
// matrix, and matmul's argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "error_of.h"
#include "kernel_test_util.h"
#include "kernels/matmul.h"

namespace qf::kernels {
namespace {

void check_against_double(int bits, int64_t m_rows, int64_t n, int64_t k, int64_t gs, bool mins = false) {
  std::mt19937 rng(static_cast<unsigned>(bits * 7 + m_rows * 13 + n + k * 3 + gs));
  const test::TestMatrix t = test::random_matrix(rng, bits, n, k, gs, false, mins);
  const std::vector<float> x = test::random_activations(rng, m_rows, k, false);
  Activations a;
  prepare_activations(a, x.data(), m_rows, k, k, true);
  std::vector<float> w(static_cast<size_t>(k));
  for (ActivationPrecision p : {ActivationPrecision::F32, ActivationPrecision::Int8}) {
    std::vector<float> y(static_cast<size_t>(m_rows * n));
    matmul(Target::Scalar, t.packed, a, p, y.data(), n, 0, n, false);
    for (int64_t r = 0; r < n; ++r) {
      t.packed.dequantize_row(r, w);
      for (int64_t m = 0; m < m_rows; ++m) {
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < k; ++i) {
          const double xv = p == ActivationPrecision::F32 ? double{x[m * k + i]}
                                                          : static_cast<double>(a.q_row(m)[i]) * double{a.scale[m]};
          ref += double{w[i]} * xv;
          mag += test::weight_magnitude(t, r, i) * std::fabs(xv);
        }
        ASSERT_NEAR(y[m * n + r], ref, 1e-5 * mag + 1e-30)
            << "bits " << bits << " group " << gs << " m " << m << " n " << r << (mins ? " mins" : "")
            << (p == ActivationPrecision::F32 ? " f32" : " int8");
      }
    }
  }
}

TEST(MatmulScalar, MatchesADoubleProductOfTheDequantizedMatrix) {
  for (int bits : {2, 3, 4, 8})
    for (int64_t gs : {16, 32, 64, 128, 1 << 20})
      for (bool mins : {false, true}) {
        check_against_double(bits, 3, 5, 200, gs, mins);
        check_against_double(bits, 1, 4, 64, gs, mins);
        check_against_double(bits, 2, 3, 37, gs, mins);
      }
}

// A zero scale with a min is a group of equal weights -min (ggml's sub-block
// scale 0); every target must give exactly -min * sum(x) for it.
TEST(Matmul, ZeroScaleGroupWithAMinIsMinusTheMinTimesTheSum) {
  PackedMatrix p(4, 1, 64, 32, true);
  std::vector<uint8_t> c(64, 5), z = {0, 0};
  const std::vector<float> s = {0.0f, 0.5f}, mn = {0.25f, -1.0f};
  p.set_row(0, c, s, z, mn);
  std::vector<float> w(64);
  p.dequantize_row(0, w);
  EXPECT_EQ(w[0], -0.25f);
  EXPECT_EQ(w[40], 0.5f * 5 + 1.0f);
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i % 7 - 3);
  Activations a;
  prepare_activations(a, x.data(), 1, 64, 64, true);
  float sum0 = 0, sum1 = 0;
  for (int i = 0; i < 32; ++i) sum0 += x[static_cast<size_t>(i)], sum1 += x[static_cast<size_t>(i + 32)];
  float dot1 = 0;
  for (int i = 32; i < 64; ++i) dot1 += w[static_cast<size_t>(i)] * x[static_cast<size_t>(i)];
  for (Target target : {Target::Scalar, Target::Avx2, Target::AvxVnni, Target::Avx512Vnni}) {
    if (!target_supported(target)) continue;
    for (ActivationPrecision prec : {ActivationPrecision::F32, ActivationPrecision::Int8}) {
      float y = 0;
      matmul(target, p, a, prec, &y, 1, 0, 1, false);
      // x is integer with |x| <= 3, so the int8 scale is 3/127 and the int8 codes are exact multiples.
      const double sx = prec == ActivationPrecision::Int8 ? double{a.scale[0]} * 127.0 / 3.0 : 1.0;
      EXPECT_NEAR(y, (-0.25 * sum0 + dot1) * sx, 1e-5) << target_name(target);
    }
  }
}

TEST(Matmul, AccumulateAndRangeLeaveOtherOutputsAlone) {
  std::mt19937 rng(11);
  const test::TestMatrix t = test::random_matrix(rng, 4, 10, 96, 32, false);
  const std::vector<float> x = test::random_activations(rng, 2, 96, false);
  Activations a;
  prepare_activations(a, x.data(), 2, 96, 96, false);
  std::vector<float> full(2 * 12), part(2 * 12, 5.0f);
  matmul(Target::Scalar, t.packed, a, ActivationPrecision::F32, full.data(), 12, 0, 10, false);
  matmul(Target::Scalar, t.packed, a, ActivationPrecision::F32, part.data(), 12, 3, 7, true);
  for (int64_t m = 0; m < 2; ++m)
    for (int64_t n = 0; n < 12; ++n)
      EXPECT_EQ(part[m * 12 + n], n >= 3 && n < 7 ? 5.0f + full[m * 12 + n] : 5.0f) << m << " " << n;
}

TEST(Matmul, BadArgumentsThrowClearErrors) {
  using qf::test::expect_error;
  std::mt19937 rng(12);
  const test::TestMatrix t = test::random_matrix(rng, 4, 8, 64, 64, false);
  const std::vector<float> x = test::random_activations(rng, 2, 64, false);
  Activations a, narrow;
  prepare_activations(a, x.data(), 2, 64, 64, false);
  prepare_activations(narrow, x.data(), 2, 60, 64, true);
  std::vector<float> y(2 * 8);
  const auto f32 = ActivationPrecision::F32, i8 = ActivationPrecision::Int8;
  expect_error([&] { matmul(Target::Scalar, t.packed, narrow, f32, y.data(), 8, 0, 8, false); },
               {"60 columns", "64"});
  expect_error([&] { matmul(Target::Scalar, t.packed, a, f32, y.data(), 8, 2, 9, false); }, {"[2, 9)", "[0, 8)"});
  expect_error([&] { matmul(Target::Scalar, t.packed, a, f32, y.data(), 8, 5, 4, false); }, {"[5, 4)"});
  expect_error([&] { matmul(Target::Scalar, t.packed, a, i8, y.data(), 8, 0, 8, false); }, {"quantize_int8"});
  expect_error([&] { matmul(Target::Scalar, t.packed, a, f32, y.data(), 4, 0, 8, false); }, {"stride 4"});
  expect_error([&] { matmul(Target::Scalar, PackedMatrix(), a, f32, y.data(), 8, 0, 8, false); }, {"empty"});
  for (Target target : {Target::Avx2, Target::AvxVnni, Target::Avx512Vnni})
    if (!target_supported(target))
      expect_error([&] { matmul(target, t.packed, a, f32, y.data(), 8, 0, 8, false); }, {"not supported"});
  expect_error([] { parse_target("neon"); }, {"neon", "avx512vnni"});
}

TEST(CpuTarget, NamesRoundTripAndScalarIsAlwaysFirst) {
  for (Target t : {Target::Scalar, Target::Avx2, Target::AvxVnni, Target::Avx512Vnni})
    EXPECT_EQ(parse_target(target_name(t)), t);
  const auto targets = supported_targets();
  ASSERT_FALSE(targets.empty());
  EXPECT_EQ(targets.front(), Target::Scalar);
  EXPECT_EQ(describe_targets().rfind("scalar", 0), 0u) << describe_targets();  // scalar first
}

}  // namespace
}  // namespace qf::kernels
