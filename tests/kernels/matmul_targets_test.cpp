// Every SIMD target against the scalar reference, on shapes that exercise the
// tails: K not a multiple of 64 (or 32), ragged last groups, M and N not
// multiples of the register blocking, sub-ranges of output rows, accumulation.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "kernel_test_util.h"
#include "kernels/matmul.h"

namespace qf::kernels {
namespace {

constexpr int64_t kPerRow = 1 << 20;

struct Case {
  int bits;
  int64_t group_size, m, n, k, n_begin, n_end, ldy;
  bool accumulate;
  bool mins = false;
};

std::string describe(const Case& c, ActivationPrecision p) {
  return fmt::format("bits {} group {} M {} N {} K {} rows [{}, {}){}{}{}", c.bits,
                     c.group_size == kPerRow ? std::string("row") : std::to_string(c.group_size), c.m, c.n, c.k,
                     c.n_begin, c.n_end, c.accumulate ? " accumulate" : "", c.mins ? " mins" : "",
                     p == ActivationPrecision::F32 ? " f32" : " int8");
}

// Random cases; K up to 1000 keeps the exact (integer) variant's partial sums below 2^22.
std::vector<Case> random_cases(std::mt19937& rng, int count) {
  std::vector<Case> out;
  const int64_t ms[] = {1, 2, 3, 5, 17, 64};
  const int64_t groups[] = {16, 32, 64, 128, 192, kPerRow};
  std::uniform_int_distribution<int64_t> k_dist(1, 1000), n_dist(1, 40), pick(0, 1 << 30);
  for (int i = 0; i < count; ++i) {
    Case c{};
    constexpr int kBits[] = {2, 3, 4, 8};
    c.bits = kBits[i % 4];
    c.group_size = groups[(i / 4) % 6];
    c.mins = (i / 24) % 2 == 1;
    c.m = ms[pick(rng) % 6];
    c.k = i % 3 == 0 ? 64 * (1 + pick(rng) % 8) : k_dist(rng);
    if (c.group_size > 32 && c.group_size != kPerRow && c.group_size < c.k && c.group_size % 64) c.group_size = 64;
    c.n = n_dist(rng);
    c.n_begin = pick(rng) % 3 == 0 ? pick(rng) % c.n : 0;
    c.n_end = pick(rng) % 3 == 0 ? c.n_begin + pick(rng) % (c.n - c.n_begin + 1) : c.n;
    c.ldy = c.n + pick(rng) % 3;
    c.accumulate = pick(rng) % 2;
    out.push_back(c);
  }
  return out;
}

class MatmulTarget : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override {
    if (!target_supported(GetParam())) GTEST_SKIP() << target_name(GetParam()) << " is not supported by this CPU";
  }

  // Runs `c` on the target and on the scalar reference; `exact` demands bit equality.
  void run_case(const Case& c, bool exact, std::mt19937& rng) {
    check_case(c, test::random_matrix(rng, c.bits, c.n, c.k, c.group_size, exact, c.mins), exact, rng, nullptr);
  }

  // `t` on the target against the scalar reference; with a `twin` (the same
  // values in another parameter form) the target's outputs on both must also
  // be equal bit for bit.
  void check_case(const Case& c, const test::TestMatrix& t, bool exact, std::mt19937& rng, const PackedMatrix* twin) {
    const std::vector<float> x = test::random_activations(rng, c.m, c.k, exact);
    Activations a;
    prepare_activations(a, x.data(), c.m, c.k, c.k, true);
    if (exact) {
      for (int64_t m = 0; m < c.m; ++m) ASSERT_EQ(a.scale[m], 1.0f);
    }
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> y0(static_cast<size_t>(c.m * c.ldy));
    for (auto& v : y0) v = exact ? std::round(8 * normal(rng)) : normal(rng);
    for (ActivationPrecision p : {ActivationPrecision::F32, ActivationPrecision::Int8}) {
      std::vector<float> ref = y0, got = y0;
      matmul(Target::Scalar, t.packed, a, p, ref.data(), c.ldy, c.n_begin, c.n_end, c.accumulate);
      matmul(GetParam(), t.packed, a, p, got.data(), c.ldy, c.n_begin, c.n_end, c.accumulate);
      if (twin) {
        std::vector<float> got_twin = y0;
        matmul(GetParam(), *twin, a, p, got_twin.data(), c.ldy, c.n_begin, c.n_end, c.accumulate);
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_EQ(got[i], got_twin[i]) << "two-level vs float parameters at " << i << ", " << describe(c, p);
      }
      for (int64_t m = 0; m < c.m; ++m)
        for (int64_t n = 0; n < c.ldy; ++n) {
          const size_t i = static_cast<size_t>(m * c.ldy + n);
          if (n < c.n_begin || n >= c.n_end) {
            ASSERT_EQ(got[i], y0[i]) << "output outside the range written: m " << m << " n " << n << ", "
                                     << describe(c, p);
            continue;
          }
          if (exact) {
            ASSERT_EQ(got[i], ref[i]) << "m " << m << " n " << n << ", " << describe(c, p);
            continue;
          }
          double mag = c.accumulate ? std::fabs(y0[i]) : 0.0;
          const float sx = p == ActivationPrecision::Int8 ? a.scale[m] : 1.0f;
          for (int64_t k = 0; k < c.k; ++k) {
            const double xv = p == ActivationPrecision::Int8 ? a.q_row(m)[k] * double{sx} : x[m * c.k + k];
            mag += test::weight_magnitude(t, n, k) * std::fabs(xv);
          }
          ASSERT_NEAR(got[i], ref[i], 1e-5 * mag + 1e-30) << "m " << m << " n " << n << ", " << describe(c, p);
        }
    }
  }
};

TEST_P(MatmulTarget, EqualsScalarBitForBitWhenEverySumIsExact) {
  std::mt19937 rng(100 + static_cast<unsigned>(GetParam()));
  for (const Case& c : random_cases(rng, 192)) {
    run_case(c, true, rng);
    if (HasFatalFailure()) return;
  }
}

TEST_P(MatmulTarget, MatchesScalarWithinRoundingOnRealValues) {
  std::mt19937 rng(200 + static_cast<unsigned>(GetParam()));
  for (const Case& c : random_cases(rng, 192)) {
    run_case(c, false, rng);
    if (HasFatalFailure()) return;
  }
}

TEST_P(MatmulTarget, DecodeShapesOfLlama1b) {
  std::mt19937 rng(300);
  // Few output rows of the real K keep the scalar reference quick.
  for (int bits : {4, 8})
    for (int64_t k : {2048, 5632}) {
      const Case c{bits, bits == 4 ? 128 : kPerRow, 1, 37, k, 0, 37, 37, false};
      run_case(c, false, rng);
      if (HasFatalFailure()) return;
    }
}

// Q6_K's and Q4_K's shapes at real widths: 8-bit codes in groups of 16 with
// signed scales, 4-bit codes in groups of 32 with mins, decode and prefill.
TEST_P(MatmulTarget, GgufKShapes) {
  std::mt19937 rng(500);
  for (int64_t m : {1, 7})
    for (int64_t k : {256, 2048}) {
      run_case(Case{8, 16, m, 37, k, 0, 37, 37, false, false}, false, rng);
      run_case(Case{8, 16, m, 37, k, 0, 37, 37, false, true}, false, rng);
      run_case(Case{4, 32, m, 37, k, 0, 37, 37, false, true}, false, rng);
      run_case(Case{2, 16, m, 37, k, 0, 37, 37, true, true}, false, rng);
      run_case(Case{3, 16, m, 37, k, 0, 37, 37, false, false}, false, rng);
      if (HasFatalFailure()) return;
    }
}

// Two-level scales (and mins) and uniform zero points: every shape of the
// random cases with 8 or 16 groups per super-block (ggml's K types) or 3 (a
// ragged last super-block), against the scalar reference and, bit for bit,
// against the same values with float parameters on the same target.
TEST_P(MatmulTarget, TwoLevelParametersMatchScalarAndTheirFloatTwin) {
  std::mt19937 rng(600 + static_cast<unsigned>(GetParam()));
  for (const bool exact : {true, false}) {
    const std::vector<Case> cases = random_cases(rng, 96);
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      const int64_t super_groups = i % 3 == 0 ? 8 : i % 3 == 1 ? 16 : 3;
      // Per-group zero points, a uniform 0 (no zero-point term at all) or 2^(b-1).
      const int uniform_zero = i % 2 == 0 ? -1 : c.bits == 8 ? 128 : i % 4 == 1 ? 0 : 1 << (c.bits - 1);
      const test::TwoLevelMatrix t = test::random_two_level_matrix(rng, c.bits, c.n, c.k, c.group_size,
                                                                   super_groups, exact, c.mins, uniform_zero);
      check_case(c, t.t, exact, rng, &t.twin);
      if (HasFatalFailure()) return;
    }
  }
}

// The K types' real widths in their repacked forms: Q4_K (4 bits, groups of
// 32, 8 per super-block, mins, zero 0), Q6_K (8 bits, groups of 16, 16 per
// super-block), Q3_K (3 bits, zero 4) and Q2_K (2 bits, mins, zero 0).
TEST_P(MatmulTarget, TwoLevelGgufKShapes) {
  std::mt19937 rng(700);
  struct K { int bits; int64_t group, per; bool mins; int zero; };
  for (const K& k : {K{4, 32, 8, true, 0}, K{8, 16, 16, false, 128}, K{3, 16, 16, false, 4}, K{2, 16, 16, true, 0}})
    for (int64_t m : {1, 7})
      for (int64_t cols : {256, 2048}) {
        const Case c{k.bits, k.group, m, 37, cols, 0, 37, 37, m == 7, k.mins};
        const test::TwoLevelMatrix t =
            test::random_two_level_matrix(rng, k.bits, 37, cols, k.group, k.per, false, k.mins, k.zero);
        check_case(c, t.t, false, rng, &t.twin);
        if (HasFatalFailure()) return;
      }
}

TEST_P(MatmulTarget, ZeroAndNanActivationRows) {
  std::mt19937 rng(400);
  const test::TestMatrix t = test::random_matrix(rng, 4, 9, 130, 64, false);
  std::vector<float> x = test::random_activations(rng, 3, 130, false);
  for (int64_t k = 0; k < 130; ++k) x[k] = 0.0f;
  x[2 * 130 + 7] = NAN;
  Activations a;
  prepare_activations(a, x.data(), 3, 130, 130, true);
  for (ActivationPrecision p : {ActivationPrecision::F32, ActivationPrecision::Int8}) {
    std::vector<float> y(3 * 9, 1.0f);
    matmul(GetParam(), t.packed, a, p, y.data(), 9, 0, 9, false);
    for (int64_t n = 0; n < 9; ++n) {
      EXPECT_EQ(y[n], 0.0f);
      EXPECT_FALSE(std::isnan(y[9 + n]));
      EXPECT_TRUE(std::isnan(y[18 + n]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, MatmulTarget,
                         ::testing::Values(Target::Scalar, Target::Avx2, Target::AvxVnni, Target::Avx512Vnni),
                         [](const ::testing::TestParamInfo<Target>& i) { return std::string(target_name(i.param)); });

}  // namespace
}  // namespace qf::kernels
