#include "quant/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace qf::quant {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Metrics, HandComputedExample) {
  const std::vector<float> ref = {1, 2, 3, 4};
  const std::vector<float> approx = {1, 2, 3, 5};
  const ErrorMetrics m = measure_error(ref, approx);
  EXPECT_DOUBLE_EQ(m.mse, 0.25);                           // 1 / 4
  EXPECT_NEAR(m.sqnr_db, 14.771212547196624, 1e-12);       // 10 log10(30 / 1)
  EXPECT_DOUBLE_EQ(m.max_abs, 1.0);
  EXPECT_NEAR(m.cosine, 0.9939990885479664, 1e-15);        // 34 / sqrt(30 * 39)
}

TEST(Metrics, SecondExample) {
  const std::vector<float> ref = {0.5f, -1.5f};
  const std::vector<float> approx = {0.25f, -1.0f};
  const ErrorMetrics m = measure_error(ref, approx);
  EXPECT_DOUBLE_EQ(m.mse, (0.0625 + 0.25) / 2);
  EXPECT_NEAR(m.sqnr_db, 10 * std::log10(2.5 / 0.3125), 1e-12);  // 9.0309 dB
  EXPECT_DOUBLE_EQ(m.max_abs, 0.5);
  EXPECT_NEAR(m.cosine, 1.625 / (std::sqrt(2.5) * std::sqrt(1.0625)), 1e-15);
}

TEST(Metrics, IdenticalIsExact) {
  const std::vector<float> v = {0.1f, -3.0f, 7.5f};
  const ErrorMetrics m = measure_error(v, v);
  EXPECT_EQ(m.mse, 0.0);
  EXPECT_EQ(m.sqnr_db, kInf);
  EXPECT_EQ(m.max_abs, 0.0);
  EXPECT_EQ(m.cosine, 1.0);
}

TEST(Metrics, DegenerateInputs) {
  const std::vector<float> zeros = {0, 0, 0};
  const ErrorMetrics z = measure_error(zeros, zeros);
  EXPECT_EQ(z.mse, 0.0);
  EXPECT_EQ(z.sqnr_db, kInf);
  EXPECT_EQ(z.cosine, 1.0);

  const std::vector<float> some = {0, 2, 0};
  const ErrorMetrics e = measure_error(zeros, some);
  EXPECT_DOUBLE_EQ(e.mse, 4.0 / 3.0);
  EXPECT_EQ(e.sqnr_db, -kInf);
  EXPECT_EQ(e.cosine, 0.0);
  EXPECT_EQ(measure_error(some, zeros).cosine, 0.0);
  EXPECT_NEAR(measure_error(some, zeros).sqnr_db, 0.0, 1e-12);  // noise == signal

  const ErrorMetrics empty = measure_error({}, {});
  EXPECT_EQ(empty.mse, 0.0);
  EXPECT_EQ(empty.sqnr_db, kInf);
  EXPECT_EQ(empty.cosine, 1.0);
}

TEST(Metrics, OrthogonalAndOpposite) {
  const ErrorMetrics o = measure_error(std::vector<float>{1, 0}, std::vector<float>{0, 1});
  EXPECT_DOUBLE_EQ(o.cosine, 0.0);
  EXPECT_DOUBLE_EQ(o.mse, 1.0);
  EXPECT_NEAR(o.sqnr_db, 10 * std::log10(0.5), 1e-12);
  const ErrorMetrics n = measure_error(std::vector<float>{1, -1}, std::vector<float>{-1, 1});
  EXPECT_DOUBLE_EQ(n.cosine, -1.0);
  EXPECT_DOUBLE_EQ(n.max_abs, 2.0);
}

TEST(Metrics, NaNPropagatesAndSizesMustMatch) {
  const std::vector<float> a = {1, 2};
  const std::vector<float> b = {1, std::numeric_limits<float>::quiet_NaN()};
  const ErrorMetrics m = measure_error(a, b);
  EXPECT_TRUE(std::isnan(m.mse));
  EXPECT_TRUE(std::isnan(m.sqnr_db));
  EXPECT_TRUE(std::isnan(m.max_abs));
  EXPECT_TRUE(std::isnan(m.cosine));
  EXPECT_THROW(measure_error(a, std::vector<float>{1}), Error);
}

}  // namespace
}  // namespace qf::quant
