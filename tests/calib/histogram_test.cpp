#include "calib/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "test_data.h"

namespace qf::calib {
namespace {

using testing::Rng;

uint64_t sum_counts(const Histogram& h) {
  const auto c = h.counts();
  return std::accumulate(c.begin(), c.end(), uint64_t{0});
}

// Counts that binning `values` directly on the histogram's final grid gives.
std::vector<uint64_t> direct_counts(const Histogram& h, const std::vector<float>& values) {
  std::vector<uint64_t> c(static_cast<size_t>(h.bins()), 0);
  const int64_t first = -h.zero_bin();
  for (float x : values) {
    const double v = h.domain() == Histogram::Domain::Magnitude ? std::fabs(x) : x;
    const int64_t i = static_cast<int64_t>(std::floor(v / h.width())) - first;
    c[static_cast<size_t>(std::clamp<int64_t>(i, 0, h.bins() - 1))]++;
  }
  return c;
}

TEST(Histogram, FirstBatchSpansTheBinsAndIncludesZero) {
  Histogram h(100);
  h.add(std::vector<float>{2.0f, 3.0f, 4.0f});
  EXPECT_EQ(h.total(), 3u);
  EXPECT_EQ(sum_counts(h), 3u);
  EXPECT_LE(h.edge(0), 0.0);
  EXPECT_GT(h.edge(h.bins()), 4.0);
  EXPECT_LT(h.edge(h.bins()), 4.1);  // no wasted bins
  EXPECT_DOUBLE_EQ(h.min(), 2.0);
  EXPECT_DOUBLE_EQ(h.max(), 4.0);
}

TEST(Histogram, NegativeRangeIncludesZero) {
  Histogram h(64);
  h.add(std::vector<float>{-5.0f, -1.0f});
  EXPECT_LE(h.edge(0), -5.0);
  EXPECT_GT(h.edge(h.bins()), 0.0);
  EXPECT_EQ(h.zero_bin(), h.bins() - 1);
  EXPECT_EQ(h.counts()[0], 1u);
}

TEST(Histogram, GrowingRangeRebinsExactly) {
  // Batches whose ranges keep growing on both sides force many merges; every
  // value must still sit in the bin of the final grid that contains it.
  Rng rng(7);
  Histogram h(256);
  std::vector<float> all;
  for (int b = 1; b <= 40; ++b) {
    std::vector<float> batch(500);
    const double lo = -0.01 * b * b, hi = 0.37 * b;
    for (auto& x : batch) x = static_cast<float>(rng.uniform(lo, hi));
    h.add(batch);
    all.insert(all.end(), batch.begin(), batch.end());
    ASSERT_EQ(sum_counts(h), all.size());
  }
  EXPECT_EQ(std::vector<uint64_t>(h.counts().begin(), h.counts().end()), direct_counts(h, all));
  // At least about half the bins span the data after growth.
  const double span = h.max() - h.min();
  EXPECT_GT(span / h.width(), 0.45 * h.bins());
}

TEST(Histogram, MagnitudeDomainBinsAbsoluteValues) {
  Rng rng(8);
  Histogram h(128, Histogram::Domain::Magnitude);
  std::vector<float> all;
  for (int b = 1; b <= 10; ++b) {
    std::vector<float> batch(300);
    for (auto& x : batch) x = static_cast<float>(rng.uniform(-b, 0.5 * b));
    h.add(batch);
    all.insert(all.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(h.zero_bin(), 0);
  EXPECT_EQ(std::vector<uint64_t>(h.counts().begin(), h.counts().end()), direct_counts(h, all));
  double amax = 0;
  for (float x : all) amax = std::max<double>(amax, std::fabs(x));
  EXPECT_DOUBLE_EQ(h.max(), amax);
}

TEST(Histogram, ZerosBeforeTheFirstNonZeroAreKept) {
  Histogram h(32);
  h.add(std::vector<float>{0.0f, 0.0f, 0.0f});
  EXPECT_EQ(h.width(), 0.0);
  EXPECT_EQ(h.total(), 3u);
  EXPECT_EQ(h.quantile(0.5), 0.0);
  h.add(std::vector<float>{1.0f});
  EXPECT_GT(h.width(), 0.0);
  EXPECT_EQ(sum_counts(h), 4u);
  EXPECT_EQ(h.counts()[static_cast<size_t>(h.zero_bin())], 3u);
  EXPECT_NEAR(h.quantile(0.5), 0.0, h.width());  // inside the zero bin
  EXPECT_DOUBLE_EQ(h.quantile(0.0), 0.0);
  EXPECT_DOUBLE_EQ(h.quantile(1.0), 1.0);
}

TEST(Histogram, ExtremeGrowthFactorTerminates) {
  Histogram h(64);
  h.add(std::vector<float>{1e-30f, 2e-30f});
  h.add(std::vector<float>{-3e30f, 1e30f});
  EXPECT_EQ(sum_counts(h), 4u);
  EXPECT_LE(h.edge(0), -3e30);
  EXPECT_GT(h.edge(h.bins()), 1e30);
}

// floor(v / width) far outside the int64 range must still trigger a rebin
// (it used to convert to INT64_MIN, which compared as "fits").
TEST(Histogram, HugePositiveRatioRebins) {
  for (auto domain : {Histogram::Domain::Signed, Histogram::Domain::Magnitude}) {
    Histogram h(64, domain);
    h.add(std::vector<float>{1e-30f, 2e-30f});
    h.add(std::vector<float>{1e30f});
    EXPECT_EQ(sum_counts(h), 3u);
    EXPECT_GE(h.edge(h.bins()), 1e30);
    EXPECT_EQ(h.counts()[static_cast<size_t>(h.bins() - 1)] + h.counts()[static_cast<size_t>(h.bins() - 2)], 1u);
    EXPECT_DOUBLE_EQ(h.quantile(1.0), h.max());
  }
  Histogram n(64);
  n.add(std::vector<float>{-1e-30f});
  n.add(std::vector<float>{-3.0e38f, 3.0e38f});
  EXPECT_EQ(sum_counts(n), 3u);
  EXPECT_LE(n.edge(0), -3.0e38);
  EXPECT_GE(n.edge(n.bins()), 3.0e38);
}

TEST(Histogram, QuantileInterpolatesAndClipsToData) {
  Histogram h(1000);
  std::vector<float> v;
  for (int i = 0; i < 1000; ++i) v.push_back(static_cast<float>(i + 0.5) / 1000.0f);
  h.add(v);
  EXPECT_DOUBLE_EQ(h.quantile(0.0), h.min());
  EXPECT_DOUBLE_EQ(h.quantile(1.0), h.max());
  EXPECT_NEAR(h.quantile(0.25), 0.25, 2e-3);
  EXPECT_NEAR(h.quantile(0.9), 0.9, 2e-3);
}

TEST(Histogram, RejectsBadArguments) {
  EXPECT_THROW(Histogram(1), Error);
  Histogram h(16);
  EXPECT_THROW(h.reserve(1.0f, 0.0f), Error);
  EXPECT_THROW(h.reserve(0.0f, INFINITY), Error);
  EXPECT_THROW((void)h.quantile(0.5), Error);  // empty
}

}  // namespace
}  // namespace qf::calib
