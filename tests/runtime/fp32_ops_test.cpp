#include "runtime/fp32_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace qf::runtime::fp32 {
namespace {

int64_t ulps(float a, float b) {
  int32_t x, y;
  std::memcpy(&x, &a, sizeof(x));
  std::memcpy(&y, &b, sizeof(y));
  return std::llabs(static_cast<int64_t>(x) - static_cast<int64_t>(y));
}

TEST(ExpApprox, WithinTwoUlpOfLibmOverTheNormalRange) {
  int64_t worst = 0;
  for (float x = -87.33f; x < 88.37f; x += 0.000731f * (1.0f + std::fabs(x))) worst = std::max(worst, ulps(exp_approx(x), std::exp(x)));
  for (float x = -1e-3f; x < 1e-3f; x += 1.7e-6f) worst = std::max(worst, ulps(exp_approx(x), std::exp(x)));
  EXPECT_LE(worst, 2);
}

TEST(ExpApprox, SaturatesOutsideTheRangeAndKeepsNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  const float tiny = std::numeric_limits<float>::min();  // e^(ln FLT_MIN), to within the constant's rounding
  EXPECT_NEAR(exp_approx(-100.0f), tiny, 1e-5f * tiny);
  EXPECT_NEAR(exp_approx(-inf), tiny, 1e-5f * tiny);
  EXPECT_GT(exp_approx(100.0f), 2.0e38f);
  EXPECT_TRUE(std::isfinite(exp_approx(inf)));
  EXPECT_TRUE(std::isnan(exp_approx(std::nanf(""))));
  EXPECT_EQ(exp_approx(0.0f), 1.0f);
}

TEST(SiluMul, MatchesTheDefinitionAndEveryLaneAgreesWithTheScalarTail) {
  // 4099 values: the SIMD body and the scalar tail both run; each value is
  // also placed at a tail position to compare the two paths bit for bit.
  const int64_t n = 4099;
  std::vector<float> gate(n), up(n), want(n);
  for (int64_t i = 0; i < n; ++i) {
    gate[i] = -95.0f + 190.0f * static_cast<float>(i) / static_cast<float>(n - 1);
    up[i] = 0.5f + static_cast<float>(i % 7);
    want[i] = static_cast<float>(gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i]);
  }
  std::vector<float> got = gate;
  silu_mul(got.data(), up.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(got[i], want[i], 2e-6f * std::fabs(want[i]) + 1e-30f) << "x = " << gate[i];
    float one_gate[3] = {0.0f, 0.0f, gate[i]}, one_up[3] = {0.0f, 0.0f, up[i]};  // n = 3: scalar only
    silu_mul(one_gate, one_up, 3);
    EXPECT_EQ(one_gate[2], got[i]) << "x = " << gate[i];
  }
}

TEST(SiluMul, NaNAndInfinities) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> gate = {std::nanf(""), inf, -inf, 0.0f, std::nanf(""), inf, -inf, 0.0f};
  const std::vector<float> up(gate.size(), 1.0f);
  silu_mul(gate.data(), up.data(), static_cast<int64_t>(gate.size()));
  for (size_t lane : {size_t{0}, size_t{4}}) {
    EXPECT_TRUE(std::isnan(gate[lane]));
    EXPECT_EQ(gate[lane + 1], inf);   // silu(inf) = inf
    EXPECT_EQ(gate[lane + 2], -inf);  // -inf / (1 + 2.4e38): a non-finite input stays non-finite
    EXPECT_EQ(gate[lane + 3], 0.0f);
  }
}

}  // namespace
}  // namespace qf::runtime::fp32
