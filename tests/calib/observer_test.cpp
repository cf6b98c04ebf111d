#include "calib/observer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "test_data.h"
#include "error_of.h"

namespace qf::calib {
namespace {

using testing::int_scheme;

using ::testing::HasSubstr;

ObserverOptions options(ObserverKind kind, bool per_channel = false) {
  ObserverOptions o;
  o.kind = kind;
  o.per_channel = per_channel;
  o.target = int_scheme(8, true);
  return o;
}

using test::error_of;

constexpr ObserverKind kAllKinds[] = {ObserverKind::MinMax, ObserverKind::MovingAverage,
                                      ObserverKind::Percentile, ObserverKind::Entropy, ObserverKind::Mse};

// ---------------------------------------------------------------- min-max / moving average

TEST(MinMax, ExactOnKnownData) {
  auto obs = make_observer(options(ObserverKind::MinMax));
  obs->observe(std::vector<float>{0.5f, -1.25f, 3.0f, 2.0f}, 2);
  obs->observe(std::vector<float>{-0.75f, 2.5f}, 2);
  obs->observe(std::vector<float>{7.0f, -3.5f, 1.0f, 0.0f}, 2);
  const auto r = obs->ranges();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], (Range{-3.5f, 7.0f}));
  EXPECT_EQ(obs->tokens_seen(), 5);
  EXPECT_EQ(obs->batches_seen(), 3);
  EXPECT_EQ(obs->channels(), 2);
}

TEST(MinMax, PerChannelExact) {
  auto obs = make_observer(options(ObserverKind::MinMax, true));
  // [3 tokens, 3 channels], then [1, 3].
  obs->observe(std::vector<float>{1, -10, 100, 2, -20, 300, -1, -5, 200}, 3);
  obs->observe(std::vector<float>{0.5f, 4, 50}, 3);
  const auto r = obs->ranges();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], (Range{-1, 2}));
  EXPECT_EQ(r[1], (Range{-20, 4}));
  EXPECT_EQ(r[2], (Range{50, 300}));
}

TEST(MovingAverage, FollowsTheMomentumFormula) {
  // Batch ranges: [-2, 3], [-4, 10], [0, 1].
  const std::vector<std::vector<float>> batches = {{1, -2, 3}, {-4, 10, 2}, {0, 1, 0.5f}};
  struct Expect {
    double momentum;
    Range after[3];
  };
  const Expect cases[] = {
      // r1 = batch 1; r2 = m r1 + (1-m) b2; r3 = m r2 + (1-m) b3.
      {0.9, {{-2, 3}, {-2.2f, 3.7f}, {-1.98f, 3.43f}}},
      {0.5, {{-2, 3}, {-3, 6.5f}, {-1.5f, 3.75f}}},
      {0.0, {{-2, 3}, {-4, 10}, {0, 1}}},
  };
  for (const auto& c : cases) {
    ObserverOptions o = options(ObserverKind::MovingAverage);
    o.momentum = c.momentum;
    auto obs = make_observer(o);
    for (int b = 0; b < 3; ++b) {
      obs->observe(batches[static_cast<size_t>(b)], 1);
      const Range r = obs->ranges().at(0);
      EXPECT_NEAR(r.lo, c.after[b].lo, 1e-6) << "momentum " << c.momentum << " batch " << b;
      EXPECT_NEAR(r.hi, c.after[b].hi, 1e-6) << "momentum " << c.momentum << " batch " << b;
    }
  }
}

TEST(MovingAverage, PerChannel) {
  ObserverOptions o = options(ObserverKind::MovingAverage, true);
  o.momentum = 0.75;
  auto obs = make_observer(o);
  obs->observe(std::vector<float>{1, 10, -1, 20}, 2);  // ch0 [-1, 1], ch1 [10, 20]
  obs->observe(std::vector<float>{3, -10}, 2);         // ch0 [3, 3],  ch1 [-10, -10]
  const auto r = obs->ranges();
  EXPECT_NEAR(r[0].lo, 0.75 * -1 + 0.25 * 3, 1e-6);
  EXPECT_NEAR(r[0].hi, 0.75 * 1 + 0.25 * 3, 1e-6);
  EXPECT_NEAR(r[1].lo, 0.75 * 10 + 0.25 * -10, 1e-6);
  EXPECT_NEAR(r[1].hi, 0.75 * 20 + 0.25 * -10, 1e-6);
}

// ---------------------------------------------------------------- per channel

// Three very different channels; each per-channel range must equal what a
// per-tensor observer computes from that column alone.
TEST(PerChannel, EveryKindTreatsChannelsIndependently) {
  const int64_t tokens = 20000, channels = 3;
  testing::Rng rng(3);
  std::vector<float> data(static_cast<size_t>(tokens * channels));
  for (int64_t t = 0; t < tokens; ++t) {
    data[static_cast<size_t>(t * 3 + 0)] = static_cast<float>(rng.normal());
    data[static_cast<size_t>(t * 3 + 1)] = static_cast<float>(rng.uniform(0.0, 5.0));
    data[static_cast<size_t>(t * 3 + 2)] = static_cast<float>(100.0 * rng.normal() + (t % 997 == 0 ? 5000 : 0));
  }
  for (bool symmetric : {true, false}) {
    for (ObserverKind kind : kAllKinds) {
      ObserverOptions o = options(kind, true);
      o.target = int_scheme(8, symmetric);
      o.histogram_bins = 512;
      auto obs = make_observer(o);
      const int64_t rows_per_batch = 2500;
      for (int64_t t = 0; t < tokens; t += rows_per_batch)
        obs->observe(std::span<const float>(data).subspan(static_cast<size_t>(t * channels),
                                                          static_cast<size_t>(rows_per_batch * channels)),
                     channels);
      const auto per_channel = obs->ranges();
      ASSERT_EQ(per_channel.size(), 3u);
      ThreadPool pool(3);
      EXPECT_EQ(obs->ranges(&pool), per_channel);
      for (int64_t c = 0; c < channels; ++c) {
        o.per_channel = false;
        auto single = make_observer(o);
        for (int64_t t = 0; t < tokens; t += rows_per_batch) {
          std::vector<float> column;
          for (int64_t i = t; i < t + rows_per_batch; ++i) column.push_back(data[static_cast<size_t>(i * channels + c)]);
          single->observe(column, 1);
        }
        EXPECT_EQ(per_channel[static_cast<size_t>(c)], single->ranges().at(0))
            << observer_kind_name(kind) << " channel " << c << " symmetric " << symmetric;
      }
      // The wide channel does not leak into the narrow ones.
      EXPECT_LT(per_channel[0].hi, 6.0f) << observer_kind_name(kind);
      EXPECT_LE(per_channel[1].hi, 5.0f) << observer_kind_name(kind);
      const auto params = params_for(*obs);
      ASSERT_EQ(params.size(), 3u);
      EXPECT_LT(params[0].scale, params[2].scale);
    }
  }
}

// ---------------------------------------------------------------- tensors / params

TEST(Observer, AcceptsTensors) {
  auto obs = make_observer(options(ObserverKind::MinMax, true));
  const std::vector<float> v = {1, 2, 3, -4, 5, -6};
  obs->observe(Tensor::from_f32(v, {2, 1, 3}));
  EXPECT_EQ(obs->channels(), 3);
  EXPECT_EQ(obs->tokens_seen(), 2);
  const Tensor bf16 = Tensor::from_f32(std::vector<float>{8, -8, 0.5f}, {3}).cast(DType::BF16);
  obs->observe(bf16);
  const auto r = obs->ranges();
  EXPECT_EQ(r[0], (Range{-4, 8}));
  EXPECT_EQ(r[1], (Range{-8, 5}));
  EXPECT_EQ(r[2], (Range{-6, 3}));
  EXPECT_THROW(obs->observe(Tensor()), Error);
}

TEST(Observer, ParamsForTheTargetScheme) {
  auto obs = make_observer(options(ObserverKind::MinMax));
  obs->observe(std::vector<float>{-1.0f, 2.54f}, 1);
  const auto sym = params_for(*obs);
  ASSERT_EQ(sym.size(), 1u);
  EXPECT_FLOAT_EQ(sym[0].scale, 2.54f / 127.0f);
  EXPECT_EQ(sym[0].zero_point, 0);
  const auto asym = params_for(*obs, int_scheme(8, false));
  EXPECT_FLOAT_EQ(asym[0].scale, 3.54f / 255.0f);
  quant::Scheme fp8 = int_scheme(8, true);
  fp8.format = quant::Format::FP8E4M3;
  EXPECT_THAT(error_of([&] { (void)params_for(*obs, fp8); }), HasSubstr("integer scheme"));
}

TEST(Observer, AllZeroStream) {
  for (ObserverKind kind : kAllKinds) {
    for (bool symmetric : {true, false}) {
      ObserverOptions o = options(kind);
      o.target = int_scheme(8, symmetric);
      auto obs = make_observer(o);
      obs->observe(std::vector<float>(100, 0.0f), 4);
      EXPECT_EQ(obs->ranges().at(0), (Range{0, 0})) << observer_kind_name(kind);
      EXPECT_NO_THROW((void)params_for(*obs)) << observer_kind_name(kind);
    }
  }
}

// ---------------------------------------------------------------- errors

TEST(ObserverErrors, EmptyStream) {
  for (ObserverKind kind : kAllKinds) {
    auto obs = make_observer(options(kind));
    EXPECT_THAT(error_of([&] { (void)obs->ranges(); }), HasSubstr("empty stream")) << observer_kind_name(kind);
    obs->observe(std::span<const float>(), 8);  // no rows: still empty
    EXPECT_THAT(error_of([&] { (void)obs->ranges(); }), HasSubstr("empty stream")) << observer_kind_name(kind);
    EXPECT_THROW((void)params_for(*obs), Error);
  }
}

TEST(ObserverErrors, NonFiniteValuesAreRejectedAndLeaveTheObserverUnchanged) {
  for (ObserverKind kind : kAllKinds) {
    for (bool per_channel : {false, true}) {
      auto obs = make_observer(options(kind, per_channel));
      obs->observe(std::vector<float>{1, -1, 2, -2}, 2);
      const auto before = obs->ranges();
      const float nan = std::numeric_limits<float>::quiet_NaN();
      EXPECT_THAT(error_of([&] { obs->observe(std::vector<float>{0, 1, 5, nan}, 2); }),
                  HasSubstr("NaN at row 1, channel 1"))
          << observer_kind_name(kind);
      EXPECT_THAT(error_of([&] { obs->observe(std::vector<float>{-INFINITY, 0}, 2); }),
                  HasSubstr("infinite value at row 0, channel 0"));
      EXPECT_EQ(obs->ranges(), before) << observer_kind_name(kind);
      EXPECT_EQ(obs->batches_seen(), 1);
    }
  }
}

// A rejected FIRST batch must not fix the channel count either.
TEST(ObserverErrors, RejectedFirstBatchLeavesTheChannelCountOpen) {
  for (ObserverKind kind : kAllKinds) {
    for (bool per_channel : {false, true}) {
      auto obs = make_observer(options(kind, per_channel));
      const float nan = std::numeric_limits<float>::quiet_NaN();
      EXPECT_THAT(error_of([&] { obs->observe(std::vector<float>{0, nan, 1, 2}, 4); }), HasSubstr("NaN"));
      EXPECT_EQ(obs->channels(), 0);
      obs->observe(std::vector<float>{1, -1, 2, -2, 3, -3}, 3);  // another channel count: accepted
      EXPECT_EQ(obs->channels(), 3);
      EXPECT_EQ(obs->batches_seen(), 1);
      EXPECT_EQ(obs->ranges().size(), per_channel ? 3u : 1u) << observer_kind_name(kind);
    }
  }
}

TEST(ObserverErrors, ChannelCountMustNotChange) {
  for (ObserverKind kind : kAllKinds) {
    for (bool per_channel : {false, true}) {
      auto obs = make_observer(options(kind, per_channel));
      obs->observe(std::vector<float>(12, 1.0f), 4);
      EXPECT_THAT(error_of([&] { obs->observe(std::vector<float>(12, 1.0f), 3); }),
                  HasSubstr("3 channels but earlier batches had 4"));
      EXPECT_THAT(error_of([&] { obs->observe(std::vector<float>(10, 1.0f), 4); }),
                  HasSubstr("not a whole number of rows of 4 channels"));
      EXPECT_THAT(error_of([&] { obs->observe(std::vector<float>(4, 1.0f), 0); }),
                  HasSubstr("positive channel count"));
      EXPECT_EQ(obs->ranges().size(), per_channel ? 4u : 1u);
    }
  }
}

TEST(ObserverErrors, BadOptions) {
  auto bad = [](auto edit) {
    ObserverOptions o;
    edit(o);
    return error_of([&] { (void)make_observer(o); });
  };
  EXPECT_THAT(bad([](ObserverOptions& o) { o.kind = ObserverKind::MovingAverage, o.momentum = 1.0; }),
              HasSubstr("momentum"));
  EXPECT_THAT(bad([](ObserverOptions& o) { o.kind = ObserverKind::MovingAverage, o.momentum = std::nan(""); }),
              HasSubstr("momentum"));
  EXPECT_THAT(bad([](ObserverOptions& o) { o.kind = ObserverKind::Percentile, o.percentile = 0.0; }),
              HasSubstr("percentile"));
  EXPECT_THAT(bad([](ObserverOptions& o) { o.kind = ObserverKind::Percentile, o.percentile = 100.5; }),
              HasSubstr("percentile"));
  EXPECT_THAT(bad([](ObserverOptions& o) { o.kind = ObserverKind::Percentile, o.histogram_bins = 8; }),
              HasSubstr("histogram_bins"));
  EXPECT_THAT(bad([](ObserverOptions& o) { o.kind = ObserverKind::Mse, o.mse_grid = 0; }), HasSubstr("mse_grid"));
  EXPECT_THAT(bad([](ObserverOptions& o) {
                o.kind = ObserverKind::Entropy;
                o.target.format = quant::Format::NF4;
                o.target.bits = 4;
              }),
              HasSubstr("integer scheme"));
  EXPECT_THAT(bad([](ObserverOptions& o) {
                o.kind = ObserverKind::Entropy;
                o.target.symmetric = false;
                o.histogram_bins = 128;
              }),
              HasSubstr("256 levels"));
  // Min-max needs no integer target.
  EXPECT_NO_THROW(bad([](ObserverOptions& o) { o.target.format = quant::Format::FP8E4M3; }));
}

TEST(ObserverKinds, ParseAndName) {
  EXPECT_EQ(parse_observer_kind("minmax"), ObserverKind::MinMax);
  EXPECT_EQ(parse_observer_kind("ema"), ObserverKind::MovingAverage);
  EXPECT_EQ(parse_observer_kind("moving_average"), ObserverKind::MovingAverage);
  EXPECT_EQ(parse_observer_kind("percentile"), ObserverKind::Percentile);
  EXPECT_EQ(parse_observer_kind("kl"), ObserverKind::Entropy);
  EXPECT_EQ(parse_observer_kind("entropy"), ObserverKind::Entropy);
  EXPECT_EQ(parse_observer_kind("mse"), ObserverKind::Mse);
  for (ObserverKind k : kAllKinds) EXPECT_EQ(parse_observer_kind(observer_kind_name(k)), k);
  EXPECT_THAT(error_of([] { (void)parse_observer_kind("KL"); }), HasSubstr("unknown observer 'KL'"));
  EXPECT_THAT(error_of([] { (void)parse_observer_kind(""); }), HasSubstr("minmax, ema, percentile, kl or mse"));
}

}  // namespace
}  // namespace qf::calib
