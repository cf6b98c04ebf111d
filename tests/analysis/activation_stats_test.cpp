#include "analysis/activation_stats.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "core/error.h"
#include "error_of.h"

namespace qf::analysis {
namespace {

using test::error_of;

// splitmix64 + Box-Muller: the same data with every standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  double uniform() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }
  double normal() {
    const double u1 = 1.0 - uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * uniform());
  }

 private:
  uint64_t state_;
};

// [rows, channels] of offset + N(0, 1), channel c multiplied by scale[c].
std::vector<float> gaussian(int64_t rows, int64_t channels, uint64_t seed, const std::vector<double>& scale = {},
                            double offset = 0.0) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(rows * channels));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < channels; ++c)
      x[static_cast<size_t>(i * channels + c)] =
          static_cast<float>(offset + rng.normal() * (scale.empty() ? 1.0 : scale[static_cast<size_t>(c)]));
  return x;
}

ActivationReport stats_of(const std::vector<float>& x, int64_t channels, bool recount = false) {
  ActivationStats s(channels);
  s.add(x);
  if (recount) s.recount(x);
  return s.report();
}

TEST(ActivationStats, GaussianHasKurtosisThreeAndNoOutliers) {
  const int64_t rows = 4096, channels = 64;
  const auto x = gaussian(rows, channels, 1);
  const ActivationReport r = stats_of(x, channels, /*recount=*/true);
  EXPECT_EQ(r.channels, channels);
  EXPECT_EQ(r.tokens, rows);
  EXPECT_NEAR(r.mean, 0.0, 0.01);
  EXPECT_NEAR(r.stddev, 1.0, 0.01);
  EXPECT_NEAR(r.kurtosis, 3.0, 0.05);
  EXPECT_TRUE(r.outlier_channels.empty());
  EXPECT_EQ(r.outlier_values, 0);
  EXPECT_LT(r.max_median_ratio, 1.5);
  ASSERT_EQ(r.channel_absmax.size(), static_cast<size_t>(channels));
  ASSERT_EQ(r.channel_absmean.size(), static_cast<size_t>(channels));
  for (float m : r.channel_absmean) EXPECT_NEAR(m, std::sqrt(2.0 / std::numbers::pi), 0.05);
}

TEST(ActivationStats, ScaledChannelsAreTheOutliers) {
  const int64_t rows = 4096, channels = 64;
  std::vector<double> scale(channels, 1.0);
  scale[5] = 50.0;
  scale[41] = 60.0;
  const auto x = gaussian(rows, channels, 2, scale);
  const ActivationReport r = stats_of(x, channels, /*recount=*/true);
  EXPECT_EQ(r.outlier_channels, (std::vector<int64_t>{41, 5}));
  EXPECT_EQ(r.absmax, r.channel_absmax[41]);
  EXPECT_NEAR(r.max_median_ratio, 60.0, 10.0);
  EXPECT_GT(r.kurtosis, 10.0);
  // Exact count, directly.
  int64_t beyond = 0;
  for (float v : x) beyond += std::fabs(v - r.mean) > 6.0 * r.stddev;
  EXPECT_EQ(r.outlier_values, beyond);
  EXPECT_GT(beyond, 0);
}

TEST(ActivationStats, OutlierValuesAreMinusOneUntilRecount) {
  const auto x = gaussian(16, 4, 3);
  ActivationStats s(4);
  s.add(x);
  EXPECT_EQ(s.report().outlier_values, -1);
  s.recount(std::span<const float>(x).first(32));
  EXPECT_EQ(s.report().outlier_values, 0);
}

TEST(ActivationStats, StreamingEqualsOneBatch) {
  const int64_t rows = 1000, channels = 24;
  std::vector<double> scale(channels, 1.0);
  scale[3] = 40.0;
  const auto x = gaussian(rows, channels, 4, scale, /*offset=*/2.5);
  const ActivationReport whole = stats_of(x, channels, true);
  ActivationStats s(channels);
  const std::span<const float> all(x);
  int64_t row = 0;
  for (int64_t n : {1, 0, 7, 100, 392, 500}) {
    s.add(all.subspan(static_cast<size_t>(row * channels), static_cast<size_t>(n * channels)));
    row += n;
  }
  ASSERT_EQ(row, rows);
  s.recount(all.first(static_cast<size_t>(300 * channels)));
  s.recount(all.subspan(static_cast<size_t>(300 * channels)));
  const ActivationReport parts = s.report();
  EXPECT_EQ(parts.tokens, whole.tokens);
  EXPECT_NEAR(parts.mean, whole.mean, 1e-12 * std::fabs(whole.mean));
  EXPECT_NEAR(parts.stddev, whole.stddev, 1e-12 * whole.stddev);
  EXPECT_NEAR(parts.kurtosis, whole.kurtosis, 1e-10 * whole.kurtosis);
  EXPECT_EQ(parts.absmax, whole.absmax);
  EXPECT_EQ(parts.channel_absmax, whole.channel_absmax);
  for (size_t c = 0; c < parts.channel_absmean.size(); ++c)
    EXPECT_FLOAT_EQ(parts.channel_absmean[c], whole.channel_absmean[c]);
  EXPECT_EQ(parts.outlier_channels, whole.outlier_channels);
  EXPECT_EQ(parts.outlier_values, whole.outlier_values);
  EXPECT_EQ(parts.max_median_ratio, whole.max_median_ratio);
}

TEST(ActivationStats, MomentsMatchADirectTwoPassComputation) {
  // A large offset: raw power sums would lose most digits of the spread.
  const int64_t rows = 2000, channels = 16;
  std::vector<double> scale(channels);
  for (int64_t c = 0; c < channels; ++c) scale[static_cast<size_t>(c)] = 0.5 + 0.25 * static_cast<double>(c);
  const auto x = gaussian(rows, channels, 5, scale, /*offset=*/1000.0);
  ActivationStats s(channels);
  for (int64_t i = 0; i < rows; i += 250)
    s.add(std::span<const float>(x).subspan(static_cast<size_t>(i * channels), static_cast<size_t>(250 * channels)));
  const ActivationReport r = s.report();

  double sum = 0;
  for (float v : x) sum += v;
  const double n = static_cast<double>(x.size());
  const double mean = sum / n;
  double m2 = 0, m4 = 0;
  for (float v : x) {
    const double d = v - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  EXPECT_NEAR(r.mean, mean, 1e-12 * mean);
  EXPECT_NEAR(r.stddev, std::sqrt(m2 / n), 1e-9 * std::sqrt(m2 / n));
  const double kurtosis = n * m4 / (m2 * m2);
  EXPECT_NEAR(r.kurtosis, kurtosis, 1e-8 * kurtosis);
  for (int64_t c = 0; c < channels; ++c) {
    double abs_sum = 0, abs_max = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const double v = std::fabs(x[static_cast<size_t>(i * channels + c)]);
      abs_sum += v;
      abs_max = std::max(abs_max, v);
    }
    EXPECT_FLOAT_EQ(r.channel_absmean[static_cast<size_t>(c)], static_cast<float>(abs_sum / rows));
    EXPECT_EQ(r.channel_absmax[static_cast<size_t>(c)], static_cast<float>(abs_max));
  }
}

TEST(ActivationStats, HandComputedValuesAndMedianRatio) {
  // One row per channel set: columns hold 1, -2, 3, 10 (even count: median 2.5).
  const ActivationReport r = stats_of({1.0f, -2.0f, 3.0f, 10.0f}, 4);
  EXPECT_DOUBLE_EQ(r.mean, 3.0);
  EXPECT_DOUBLE_EQ(r.stddev, std::sqrt((4.0 + 25.0 + 0.0 + 49.0) / 4.0));
  EXPECT_DOUBLE_EQ(r.absmax, 10.0);
  EXPECT_DOUBLE_EQ(r.max_median_ratio, 4.0);
  EXPECT_EQ(r.channel_absmean, (std::vector<float>{1.0f, 2.0f, 3.0f, 10.0f}));
  EXPECT_DOUBLE_EQ(stats_of({1.0f, 2.0f, 10.0f}, 3).max_median_ratio, 5.0);  // odd count
  const ActivationReport k = stats_of({1, 2, 3, 4}, 1);
  EXPECT_NEAR(k.kurtosis, 1.64, 1e-12);  // m4 / m2^2 = 2.5625 / 1.5625
  EXPECT_DOUBLE_EQ(stats_of({0, 0, 0, 0}, 2).max_median_ratio, 1.0);
  EXPECT_EQ(stats_of({0, 0, 5}, 3).max_median_ratio, std::numeric_limits<double>::infinity());
  EXPECT_EQ(stats_of({0, 0, 0, 0}, 2).kurtosis, 0.0);
}

TEST(ActivationStats, Errors) {
  ActivationStats s(3);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(error_of([&] { s.report(); }), "activation stats: no values added (3 channels)");
  EXPECT_EQ(error_of([&] { s.recount(std::vector<float>{1, 2, 3}); }),
            "activation stats: recount() before any add()");
  EXPECT_EQ(error_of([&] { s.add(std::vector<float>{1, 2, 3, 4}); }),
            "activation batch of 4 values is not a whole number of rows of 3 channels");
  EXPECT_EQ(error_of([&] { s.add(std::vector<float>{1, 2, 3, 4, nan, 6}); }),
            "activation batch has a NaN at row 1, channel 1 (of 3 channels)");
  EXPECT_EQ(error_of([&] { s.add(std::vector<float>{-inf, 2, 3}); }),
            "activation batch has an infinite value at row 0, channel 0 (of 3 channels)");
  EXPECT_EQ(error_of([&] { s.report(); }), "activation stats: no values added (3 channels)");  // unchanged
  s.add(std::vector<float>{1, 2, 3});
  EXPECT_EQ(error_of([&] { s.recount(std::vector<float>{1, 2, 3, 1, 2, 3}); }),
            "activation stats: recount() saw 2 rows, more than the 1 added");
  s.recount(std::vector<float>{1, 2, 3});
  EXPECT_EQ(error_of([&] { s.add(std::vector<float>{1, 2, 3}); }),
            "activation stats: add() after recount() (the second pass needs the final moments)");
  EXPECT_EQ(error_of([] { ActivationStats bad(0); }), "activation stats: channel count must be positive, got 0");
}

}  // namespace
}  // namespace qf::analysis
