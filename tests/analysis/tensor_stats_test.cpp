#include "analysis/tensor_stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace qf::analysis {
namespace {

TEST(TensorStats, HandComputedMoments) {
  const std::vector<float> v = {1, 2, 3, 4};
  const TensorStats s = compute_stats(v);
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_DOUBLE_EQ(s.std, std::sqrt(1.25));
  // m4 = (2*1.5^4 + 2*0.5^4)/4 = 2.5625; kurtosis = m4 / m2^2 = 1.64
  EXPECT_NEAR(s.kurtosis, 1.64, 1e-12);
  EXPECT_EQ(s.outliers, 0);
}

TEST(TensorStats, GaussianWithOutliers) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> v(200000);
  for (auto& x : v) x = n(rng);
  const TensorStats clean = compute_stats(v);
  EXPECT_NEAR(clean.kurtosis, 3.0, 0.1);
  EXPECT_LE(clean.outliers, 2);  // P(|z|>6) ~ 2e-9
  for (int i = 0; i < 20; ++i) v[i * 1000] = (i % 2 ? 40.0f : -40.0f);
  const TensorStats dirty = compute_stats(v);
  EXPECT_EQ(dirty.outliers, 20);
  EXPECT_GT(dirty.kurtosis, 10.0);
}

TEST(TensorStats, NonFiniteValuesAreCountedNotMixedIn) {
  const std::vector<float> v = {1.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f,
                                std::numeric_limits<float>::infinity()};
  const TensorStats s = compute_stats(v);
  EXPECT_EQ(s.count, 2);
  EXPECT_EQ(s.non_finite, 2);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_EQ(compute_stats({}).count, 0);
}

}  // namespace
}  // namespace qf::analysis
