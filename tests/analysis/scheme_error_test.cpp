#include "analysis/scheme_error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "quant/metrics.h"
#include "quant/quantize.h"
#include "quant/scheme.h"

namespace qf::analysis {
namespace {

Tensor gaussian(Shape shape, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = n(rng);
  return Tensor::from_f32(v, std::move(shape));
}

TEST(SchemeError, VectorsAreKeptAsStored) {
  const Tensor v = gaussian({64}, 1).cast(DType::BF16);
  const auto s = quant::Scheme::parse("int4:g32");
  EXPECT_FALSE(is_quantizable(v));
  const TensorQuantError e = evaluate_scheme(v, s);
  EXPECT_FALSE(e.quantized);
  EXPECT_EQ(e.numel, 64);
  EXPECT_EQ(e.original_bytes, 128u);
  EXPECT_EQ(e.quantized_bytes, 128u);
  EXPECT_EQ(e.noise_power, 0.0);
  // Integer matrices are not quantizable either.
  EXPECT_FALSE(is_quantizable(Tensor::zeros(DType::I32, {4, 4})));
}

TEST(SchemeError, MatricesAreQuantizedAndMatchMeasureError) {
  const Tensor w = gaussian({8, 64}, 2, 0.5f);
  for (const char* spec : {"int8:channel", "int4:g32:asym", "nf4:g64"}) {
    const auto s = quant::Scheme::parse(spec);
    const TensorQuantError e = evaluate_scheme(w, s);
    ASSERT_TRUE(e.quantized) << spec;
    EXPECT_EQ(e.numel, 512);
    EXPECT_EQ(e.original_bytes, 2048u);
    const quant::QuantizedTensor q = quant::quantize(w, s);
    EXPECT_EQ(e.quantized_bytes, q.storage_bytes()) << spec;
    const Tensor back = quant::dequantize(q);
    const auto m = quant::measure_error({w.data<float>(), 512}, {back.data<float>(), 512});
    EXPECT_DOUBLE_EQ(e.metrics.sqnr_db, m.sqnr_db) << spec;
    EXPECT_DOUBLE_EQ(e.metrics.mse, m.mse) << spec;
    EXPECT_DOUBLE_EQ(e.signal_power, m.signal_power) << spec;
    EXPECT_DOUBLE_EQ(e.noise_power, m.noise_power) << spec;
    EXPECT_NEAR(e.metrics.sqnr_db, 10.0 * std::log10(e.signal_power / e.noise_power), 1e-9) << spec;
    EXPECT_GT(e.noise_power, 0.0) << spec;
  }
  // int8 per channel: 512 code bytes + 8 f32 scales.
  EXPECT_EQ(evaluate_scheme(w, quant::Scheme::parse("int8:channel")).quantized_bytes, 512u + 32u);
}

TEST(SchemeError, SummaryAggregatesSignalAndNoise) {
  TensorQuantError a;
  a.quantized = true;
  a.numel = 100;
  a.original_bytes = 400;
  a.quantized_bytes = 50;
  a.signal_power = 100.0;
  a.noise_power = 1.0;  // 20 dB
  a.metrics.sqnr_db = 20.0;
  TensorQuantError b = a;
  b.numel = 300;
  b.original_bytes = 1200;
  b.quantized_bytes = 150;
  b.signal_power = 300.0;
  b.noise_power = 30.0;  // 10 dB: the worst
  b.metrics.sqnr_db = 10.0;
  TensorQuantError kept;  // a norm vector, kept as stored
  kept.numel = 100;
  kept.original_bytes = 400;
  kept.quantized_bytes = 400;
  const std::vector<TensorQuantError> all = {a, b, kept};
  const SchemeSummary s = summarize(all);
  EXPECT_EQ(s.params, 500);
  EXPECT_EQ(s.original_bytes, 2000u);
  EXPECT_EQ(s.quantized_bytes, 600u);
  EXPECT_DOUBLE_EQ(s.bits_per_weight, 8.0 * 600.0 / 500.0);  // kept tensors count
  // Total signal / total noise, not the mean of the per-tensor dBs.
  EXPECT_DOUBLE_EQ(s.sqnr_db, 10.0 * std::log10(400.0 / 31.0));
  EXPECT_DOUBLE_EQ(s.mse, 31.0 / 400.0);  // over quantized values only
  EXPECT_DOUBLE_EQ(s.worst_sqnr_db, 10.0);
}

TEST(SchemeError, SummaryOfNothingQuantized) {
  TensorQuantError kept;
  kept.numel = 10;
  kept.original_bytes = kept.quantized_bytes = 40;
  const SchemeSummary s = summarize(std::vector<TensorQuantError>{kept});
  EXPECT_EQ(s.params, 10);
  EXPECT_DOUBLE_EQ(s.bits_per_weight, 32.0);
  EXPECT_EQ(s.sqnr_db, std::numeric_limits<double>::infinity());
  EXPECT_EQ(s.mse, 0.0);
  EXPECT_EQ(s.worst_sqnr_db, s.sqnr_db);
  const SchemeSummary none = summarize({});
  EXPECT_EQ(none.params, 0);
  EXPECT_EQ(none.bits_per_weight, 0.0);
}

TEST(SchemeError, EndToEndSummaryMatchesDirectComputation) {
  const Tensor w1 = gaussian({16, 32}, 3, 1.0f);
  const Tensor w2 = gaussian({4, 32}, 4, 0.01f);
  const Tensor norm = gaussian({32}, 5);
  const auto s = quant::Scheme::parse("int4:g16");
  const std::vector<TensorQuantError> errs = {evaluate_scheme(w1, s), evaluate_scheme(w2, s),
                                              evaluate_scheme(norm, s)};
  const SchemeSummary sum = summarize(errs);
  const double signal = errs[0].signal_power + errs[1].signal_power;
  const double noise = errs[0].noise_power + errs[1].noise_power;
  EXPECT_DOUBLE_EQ(sum.sqnr_db, 10.0 * std::log10(signal / noise));
  EXPECT_DOUBLE_EQ(sum.worst_sqnr_db, std::min(errs[0].metrics.sqnr_db, errs[1].metrics.sqnr_db));
  EXPECT_EQ(sum.quantized_bytes, errs[0].quantized_bytes + errs[1].quantized_bytes + 128u);
}

}  // namespace
}  // namespace qf::analysis
