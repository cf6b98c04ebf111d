// Accuracy of the histogram-based observers: percentile, KL (entropy) and MSE.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <vector>

#include "calib/clipping.h"
#include "calib/observer.h"
#include "test_data.h"

namespace qf::calib {
namespace {

using testing::int_scheme;

using testing::normal_values;
using testing::quantization_mse;
using testing::uniform_values;

ObserverOptions options(ObserverKind kind, quant::Scheme target) {
  ObserverOptions o;
  o.kind = kind;
  o.target = target;
  return o;
}

// Feeds `values` as [n / channels, channels] batches of `rows` rows.
Range observe_all(Observer& obs, const std::vector<float>& values, size_t rows_per_batch, int64_t channels = 1) {
  const size_t step = rows_per_batch * static_cast<size_t>(channels);
  for (size_t i = 0; i < values.size(); i += step) {
    const size_t n = std::min(step, values.size() - i);
    obs.observe(std::span<const float>(values.data() + i, n), channels);
  }
  const auto r = obs.ranges();
  EXPECT_EQ(r.size(), 1u);
  return r.at(0);
}

double empirical_quantile(std::vector<float> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto i = static_cast<size_t>(pos);
  const double f = pos - static_cast<double>(i);
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

// Orders `values` by magnitude so every batch exceeds the range seen so far.
std::vector<float> growing_order(std::vector<float> v) {
  std::sort(v.begin(), v.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); });
  return v;
}

// ---------------------------------------------------------------- percentile

struct PercentileCase {
  double percentile;
  bool growing;
};
void PrintTo(const PercentileCase& c, std::ostream* os) { *os << c.percentile << (c.growing ? " growing" : ""); }

class UniformPercentile : public ::testing::TestWithParam<PercentileCase> {};

TEST_P(UniformPercentile, OfUniformZeroOne) {
  const auto [pct, growing] = GetParam();
  auto values = uniform_values(11, 200000, 0.0, 1.0);
  if (growing) values = growing_order(values);
  for (bool symmetric : {true, false}) {
    ObserverOptions o = options(ObserverKind::Percentile, int_scheme(8, symmetric));
    o.percentile = pct;
    auto obs = make_observer(o);
    const Range r = observe_all(*obs, values, 20000);
    const double p = pct / 100.0;
    EXPECT_NEAR(r.hi, p, 2e-3) << "symmetric=" << symmetric;  // true value
    EXPECT_NEAR(r.hi, empirical_quantile(values, p), 1e-3) << "symmetric=" << symmetric;
    if (symmetric) {
      EXPECT_GE(r.lo, 0.0f);  // cut back to the (non-negative) data
    } else {
      EXPECT_NEAR(r.lo, 1.0 - p, 2e-3);
    }
  }
}

TEST_P(UniformPercentile, OfMagnitudeOfUniformMinusOneOne) {
  const auto [pct, growing] = GetParam();
  auto values = uniform_values(12, 200000, -1.0, 1.0);
  if (growing) values = growing_order(values);
  ObserverOptions o = options(ObserverKind::Percentile, int_scheme(8, true));
  o.percentile = pct;
  auto obs = make_observer(o);
  const Range r = observe_all(*obs, values, 20000);
  std::vector<float> mags(values.size());
  std::transform(values.begin(), values.end(), mags.begin(), [](float x) { return std::fabs(x); });
  const double p = pct / 100.0;
  EXPECT_NEAR(r.hi, p, 2e-3);
  EXPECT_NEAR(-r.lo, p, 2e-3);
  EXPECT_NEAR(r.hi, empirical_quantile(mags, p), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Calib, UniformPercentile,
                         ::testing::Values(PercentileCase{99.0, false}, PercentileCase{99.9, false},
                                           PercentileCase{99.0, true}, PercentileCase{99.9, true}),
                         [](const auto& param_info) {
                           return std::string(param_info.param.percentile == 99.0 ? "p99" : "p999") +
                                  (param_info.param.growing ? "_growing" : "_shuffled");
                         });

TEST(Percentile, AsymmetricTailsOfShiftedUniform) {
  const auto values = growing_order(uniform_values(13, 100000, -1.0, 3.0));
  ObserverOptions o = options(ObserverKind::Percentile, int_scheme(8, false));
  o.percentile = 99.0;
  auto obs = make_observer(o);
  const Range r = observe_all(*obs, values, 10000);
  EXPECT_NEAR(r.lo, -1.0 + 4.0 * 0.01, 5e-3);
  EXPECT_NEAR(r.hi, -1.0 + 4.0 * 0.99, 5e-3);
}

TEST(Percentile, HundredIsMinMax) {
  const auto values = normal_values(14, 10000);
  ObserverOptions o = options(ObserverKind::Percentile, int_scheme(8, false));
  o.percentile = 100.0;
  auto obs = make_observer(o);
  const Range r = observe_all(*obs, values, 1000);
  EXPECT_EQ(r.lo, *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(r.hi, *std::max_element(values.begin(), values.end()));
}

// ---------------------------------------------------------------- histogram MSE

TEST(HistogramMse, MatchesTheEmpiricalErrorOnTheData) {
  const auto values = normal_values(21, 200000);
  for (bool symmetric : {true, false}) {
    Histogram h(2048, symmetric ? Histogram::Domain::Magnitude : Histogram::Domain::Signed);
    h.add(values);
    for (int bits : {4, 8}) {
      for (float clip : {1.5f, 3.0f, 6.0f}) {
        const auto p = quant::affine_params_from_range(-clip, clip, int_scheme(bits, symmetric));
        const double predicted = histogram_mse(h, p);
        const double actual = quantization_mse(values, p);
        EXPECT_NEAR(predicted, actual, 0.03 * actual)
            << "bits=" << bits << " clip=" << clip << " symmetric=" << symmetric;
      }
    }
  }
}

// ---------------------------------------------------------------- Gaussian + outliers

// N(0, 1) values with `outliers` of them (evenly spread, alternating sign)
// replaced by +-50.
std::vector<float> gaussian_with_outliers(size_t n, size_t outliers) {
  auto v = normal_values(31, n);
  for (size_t k = 0; k < outliers; ++k) v[(2 * k + 1) * n / (2 * outliers)] = k % 2 ? -50.0f : 50.0f;
  return v;
}

struct OutlierResult {
  Range range;
  double mse;
};

OutlierResult calibrate(ObserverKind kind, const std::vector<float>& values, const quant::Scheme& scheme) {
  auto obs = make_observer(options(kind, scheme));
  const Range r = observe_all(*obs, values, 100000);
  const auto p = params_for(*obs).at(0);
  return {r, quantization_mse(values, p)};
}

struct OutlierCase {
  int bits;
  bool symmetric;
  size_t outliers;  // per million values
};
void PrintTo(const OutlierCase& c, std::ostream* os) {
  *os << "int" << c.bits << (c.symmetric ? " sym, " : " asym, ") << c.outliers << " ppm";
}

class GaussianOutliers : public ::testing::TestWithParam<OutlierCase> {};

// The brief: KL and MSE clip the outliers and beat min-max on the data's MSE.
// For this to hold for KL the outliers must be rare enough that clipping them
// costs less than min-max's coarse step: at int8 min-max's MSE is
// (50/127)^2/12 = 0.013, while clipping a fraction f of values at 50 down to
// ~4 costs f * 46^2, so f must stay below ~6e-6. Hence int8 runs with 2 per
// million; int4 (min-max MSE ~ 1) tolerates 0.01%.
TEST_P(GaussianOutliers, KlAndMseClipOutliersAndBeatMinMax) {
  const auto [bits, symmetric, outliers] = GetParam();
  const auto values = gaussian_with_outliers(1000000, outliers);
  const auto scheme = int_scheme(bits, symmetric);
  const auto minmax = calibrate(ObserverKind::MinMax, values, scheme);
  const auto kl = calibrate(ObserverKind::Entropy, values, scheme);
  const auto mse = calibrate(ObserverKind::Mse, values, scheme);
  std::printf("int%d %s, %zu outliers/1e6: minmax [%g, %g] mse %.3g | kl [%g, %g] mse %.3g | mse [%g, %g] mse %.3g\n",
              bits, symmetric ? "sym" : "asym", outliers, minmax.range.lo, minmax.range.hi, minmax.mse,
              kl.range.lo, kl.range.hi, kl.mse, mse.range.lo, mse.range.hi, mse.mse);
  EXPECT_EQ(minmax.range.hi, 50.0f);
  EXPECT_EQ(minmax.range.lo, -50.0f);
  for (const auto* r : {&kl, &mse}) {
    EXPECT_LT(r->range.hi, 20.0f);
    EXPECT_GT(r->range.lo, -20.0f);
    EXPECT_GT(r->range.hi, 1.0f);  // ... without clipping the Gaussian itself away
    EXPECT_LT(r->range.lo, -1.0f);
    EXPECT_LT(r->mse, 0.5 * minmax.mse);
  }
  // MSE is the optimum of what it estimates, so it is at least as good as KL.
  EXPECT_LE(mse.mse, kl.mse * 1.02);
}

INSTANTIATE_TEST_SUITE_P(Calib, GaussianOutliers,
                         ::testing::Values(OutlierCase{8, true, 2}, OutlierCase{8, false, 2},
                                           OutlierCase{4, true, 100}, OutlierCase{4, false, 100}),
                         [](const auto& param_info) {
                           return "int" + std::to_string(param_info.param.bits) +
                                  (param_info.param.symmetric ? "_sym_" : "_asym_") +
                                  std::to_string(param_info.param.outliers) + "ppm";
                         });

// With 0.01% outliers at int8 keeping them is right for the MSE: the MSE
// observer stays near min-max (and is never worse), while KL, which ignores
// the cost of clipping, still clips them.
TEST(GaussianOutliers, Int8DenseOutliersMseNeverWorseThanMinMax) {
  const auto values = gaussian_with_outliers(1000000, 100);
  for (bool symmetric : {true, false}) {
    const auto scheme = int_scheme(8, symmetric);
    const auto minmax = calibrate(ObserverKind::MinMax, values, scheme);
    const auto kl = calibrate(ObserverKind::Entropy, values, scheme);
    const auto mse = calibrate(ObserverKind::Mse, values, scheme);
    std::printf("int8 %s, 100 outliers/1e6: minmax mse %.3g | kl [%g, %g] mse %.3g | mse [%g, %g] mse %.3g\n",
                symmetric ? "sym" : "asym", minmax.mse, kl.range.lo, kl.range.hi, kl.mse, mse.range.lo,
                mse.range.hi, mse.mse);
    EXPECT_LE(mse.mse, minmax.mse * 1.001);
    EXPECT_GT(mse.range.hi, 30.0f);
    EXPECT_LT(kl.range.hi, 10.0f);
  }
}

// ---------------------------------------------------------------- sanity of the searches

TEST(Entropy, KeepsTheRangeOfUniformData) {
  const auto values = uniform_values(41, 200000, -1.0, 1.0);
  for (bool symmetric : {true, false}) {
    auto obs = make_observer(options(ObserverKind::Entropy, int_scheme(8, symmetric)));
    const Range r = observe_all(*obs, values, 50000);
    EXPECT_GT(r.hi, 0.95f) << symmetric;
    EXPECT_LT(r.lo, -0.95f) << symmetric;
  }
}

TEST(Entropy, AsymmetricTargetKeepsTheShortSide) {
  // |N(0, 1)| (one-sided: 2^bits levels) and a skewed two-sided variant.
  auto values = normal_values(42, 200000);
  for (auto& x : values) x = std::fabs(x);
  auto obs = make_observer(options(ObserverKind::Entropy, int_scheme(8, false)));
  Range r = observe_all(*obs, values, 50000);
  EXPECT_EQ(r.lo, *std::min_element(values.begin(), values.end()));
  EXPECT_GT(r.hi, 3.0f);
  for (auto& x : values) x = x > 0.2f ? x : -x;  // a few negatives down to -0.2
  obs = make_observer(options(ObserverKind::Entropy, int_scheme(8, false)));
  r = observe_all(*obs, values, 50000);
  EXPECT_EQ(r.lo, *std::min_element(values.begin(), values.end()));
  EXPECT_GT(r.hi, 3.0f);
}

TEST(Entropy, LevelsFollowTheBitWidth) {
  EXPECT_EQ(entropy_levels(int_scheme(8, true)), 128);
  EXPECT_EQ(entropy_levels(int_scheme(4, true)), 8);
  EXPECT_EQ(entropy_levels(int_scheme(8, true), true), 128);
  EXPECT_EQ(entropy_levels(int_scheme(8, false)), 128);
  EXPECT_EQ(entropy_levels(int_scheme(8, false), true), 256);
  EXPECT_EQ(entropy_levels(int_scheme(4, false), true), 16);
}

TEST(Mse, ClipsOnlyTheLongTailOfSkewedData) {
  // Exponential-like data in [0, ~14] plus a little negative noise: an
  // asymmetric int4 range should cut the long upper tail and keep the bottom.
  testing::Rng rng(51);
  std::vector<float> values(200000);
  for (auto& x : values) x = static_cast<float>(-std::log(1.0 - rng.uniform()) - 0.1 * rng.uniform());
  auto obs = make_observer(options(ObserverKind::Mse, int_scheme(4, false)));
  const Range r = observe_all(*obs, values, 50000);
  const float lo = *std::min_element(values.begin(), values.end());
  const float hi = *std::max_element(values.begin(), values.end());
  EXPECT_LT(r.hi, 0.6f * hi);
  EXPECT_LT(r.lo, 0.0f);  // the short negative side stays
  const auto minmax_p = quant::affine_params_from_range(lo, hi, int_scheme(4, false));
  EXPECT_LT(quantization_mse(values, params_for(*obs).at(0)), quantization_mse(values, minmax_p));
}

TEST(Mse, KeepsTheRangeOfUniformData) {
  const auto values = uniform_values(52, 100000, -1.0, 1.0);
  auto obs = make_observer(options(ObserverKind::Mse, int_scheme(8, true)));
  const Range r = observe_all(*obs, values, 50000);
  EXPECT_GT(r.hi, 0.95f);
}

}  // namespace
}  // namespace qf::calib
