#include "algo/bit_allocation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "error_of.h"

namespace qf::algo {
namespace {

using ::testing::HasSubstr;
using Layers = std::vector<std::vector<Candidate>>;

using test::error_of;

// splitmix64: the same instances with every standard library.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t state_;
};

// Lexicographically first minimum-error choice within the budget, by
// enumerating every combination in lexicographic order.
Allocation brute_force(const Layers& layers, double budget) {
  Allocation best;
  best.error = std::numeric_limits<double>::infinity();
  std::vector<int> choice(layers.size(), 0);
  while (true) {
    double cost = 0, error = 0;
    for (size_t i = 0; i < layers.size(); ++i) {
      cost += layers[i][static_cast<size_t>(choice[i])].cost;
      error += layers[i][static_cast<size_t>(choice[i])].error;
    }
    if (cost <= budget && error < best.error) best = {choice, cost, error};
    size_t i = layers.size();
    while (i > 0 && choice[i - 1] + 1 == static_cast<int>(layers[i - 1].size())) choice[--i] = 0;
    if (i == 0) break;
    ++choice[i - 1];
  }
  return best;
}

// Small integer costs and errors: sums are exact in double and ties common,
// so the tie rule is exercised too.
Layers random_instance(SplitMix64& rng, int n_layers, int n_candidates) {
  Layers layers(static_cast<size_t>(n_layers));
  for (auto& layer : layers) {
    const int64_t n = 1 + rng.below(n_candidates);
    for (int64_t j = 0; j < n; ++j)
      layer.push_back({static_cast<double>(rng.below(20)), static_cast<double>(rng.below(10))});
  }
  return layers;
}

double min_cost(const Layers& layers) {
  double sum = 0;
  for (const auto& layer : layers) {
    double m = layer[0].cost;
    for (const auto& c : layer) m = std::min(m, c.cost);
    sum += m;
  }
  return sum;
}

TEST(BitAllocation, MatchesBruteForceOnIntegerInstances) {
  SplitMix64 rng(1);
  for (int seed = 0; seed < 300; ++seed) {
    const Layers layers = random_instance(rng, 6, 4);
    const double lo = min_cost(layers);
    // A unit of 1 (cost_steps == budget) makes the rounding exact.
    const double budget = lo + static_cast<double>(rng.below(40));
    if (budget == 0) continue;
    const Allocation got = allocate_bits(layers, budget, static_cast<int64_t>(budget));
    const Allocation want = brute_force(layers, budget);
    ASSERT_EQ(got.choice, want.choice) << "instance " << seed << ", budget " << budget;
    EXPECT_EQ(got.cost, want.cost);
    EXPECT_EQ(got.error, want.error);
  }
}

TEST(BitAllocation, NeverExceedsBudgetAndNearOptimalWithFractionalCosts) {
  SplitMix64 rng(2);
  for (int seed = 0; seed < 200; ++seed) {
    Layers layers(6);
    for (auto& layer : layers)
      for (int j = 0; j < 4; ++j)
        layer.push_back({1.0 + static_cast<double>(rng.below(1000000)) * 1e-4,
                         static_cast<double>(rng.below(1000000)) * 1e-6});
    const double lo = min_cost(layers);
    const double budget = lo + static_cast<double>(rng.below(1000000)) * 1e-4;
    const Allocation got = allocate_bits(layers, budget, 2000);
    const Allocation want = brute_force(layers, budget);
    ASSERT_EQ(got.choice.size(), layers.size());
    EXPECT_LE(got.cost, budget);
    double cost = 0, error = 0;
    for (size_t i = 0; i < layers.size(); ++i) {
      cost += layers[i][static_cast<size_t>(got.choice[i])].cost;
      error += layers[i][static_cast<size_t>(got.choice[i])].error;
    }
    EXPECT_EQ(got.cost, cost);  // exact, not rounded
    EXPECT_EQ(got.error, error);
    EXPECT_GE(got.error, want.error);
    // Rounding can only cost the optimum of a budget smaller by one unit per layer.
    const Allocation tighter = brute_force(layers, budget - 6 * budget / 2000);
    if (std::isfinite(tighter.error)) {
      EXPECT_LE(got.error, tighter.error) << "instance " << seed;
    }
  }
}

TEST(BitAllocation, BudgetAtTheMinimumStillFeasible) {
  // Each cost rounds up past the budget's share; the exact cheapest choice fits.
  const Layers layers(10, std::vector<Candidate>{{1.01, 5.0}, {2.0, 1.0}});
  const Allocation a = allocate_bits(layers, 10.1, 10);
  EXPECT_EQ(a.choice, std::vector<int>(10, 0));
  EXPECT_LE(a.cost, 10.1);
  EXPECT_DOUBLE_EQ(a.error, 50.0);
}

TEST(BitAllocation, TiesPreferTheLowerIndex) {
  const Layers layers = {{{1, 1}, {1, 1}, {2, 0}}, {{3, 2}, {1, 2}}};
  EXPECT_EQ(allocate_bits(layers, 10).choice, (std::vector<int>{2, 0}));
  EXPECT_EQ(allocate_bits(layers, 3, 3).choice, (std::vector<int>{2, 1}));
  EXPECT_EQ(allocate_bits(layers, 2, 2).choice, (std::vector<int>{0, 1}));
}

TEST(BitAllocation, ZeroBudgetAndNoLayers) {
  const Layers layers = {{{0, 3}, {1, 0}}, {{0, 1}}};
  const Allocation a = allocate_bits(layers, 0);
  EXPECT_EQ(a.choice, (std::vector<int>{0, 0}));
  EXPECT_EQ(a.cost, 0);
  EXPECT_EQ(a.error, 4);
  const Allocation none = allocate_bits({}, 5);
  EXPECT_TRUE(none.choice.empty());
  EXPECT_EQ(none.cost, 0);
}

TEST(BitAllocation, RealisticLayersGetMonotoneBits) {
  // 32 layers of equal size with growing sensitivity (and a few twice as
  // large); candidates 2, 3, 4 and 8 bits, error ~ sensitivity * 4^-bits.
  const int bits[] = {2, 3, 4, 8};
  const int n = 32;
  Layers layers(n);
  std::vector<double> params(n);
  for (int i = 0; i < n; ++i) {
    params[static_cast<size_t>(i)] = (i % 8 == 7 ? 2.0 : 1.0) * 4096.0 * 4096.0;
    const double sensitivity = 1.0 + i;
    for (int b : bits)
      layers[static_cast<size_t>(i)].push_back(
          {params[static_cast<size_t>(i)] * b, sensitivity * std::pow(4.0, -b)});
  }
  double total_params = 0;
  for (double p : params) total_params += p;
  double previous_error = std::numeric_limits<double>::infinity();
  for (double avg_bits : {2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0}) {
    const double budget = avg_bits * total_params;
    const Allocation a = allocate_bits(layers, budget);
    EXPECT_LE(a.cost, budget);
    EXPECT_GE(a.cost, 0.97 * budget) << "a large budget should be nearly used, avg " << avg_bits;
    EXPECT_LE(a.error, previous_error);  // more budget never hurts
    previous_error = a.error;
    // Among equal-size layers a more sensitive one never gets fewer bits
    // (swapping would lower the error at the same cost).
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j)
        if (params[static_cast<size_t>(i)] == params[static_cast<size_t>(j)]) {
          EXPECT_LE(a.choice[static_cast<size_t>(i)], a.choice[static_cast<size_t>(j)])
              << "layers " << i << " and " << j << " at " << avg_bits << " bits";
        }
  }
  EXPECT_EQ(allocate_bits(layers, 2.0 * total_params).choice, std::vector<int>(n, 0));
  // Every cost rounds up by under one unit (budget / 20000): 32 layers need
  // 0.16% of slack above the exact all-8-bit cost.
  EXPECT_EQ(allocate_bits(layers, 8.02 * total_params).choice, std::vector<int>(n, 3));
}

TEST(BitAllocation, LargeTableIsFast) {
  // 1000 layers x 20000 steps, the documented scale (~40 MB of back-pointers).
  SplitMix64 rng(3);
  Layers layers(1000);
  for (auto& layer : layers)
    for (int b : {2, 3, 4, 8}) layer.push_back({b * (1.0 + rng.below(4)), std::pow(4.0, -b) * (1 + rng.below(100))});
  const double budget = 0.5 * (min_cost(layers) + 8 * 4 * 1000);
  const Allocation a = allocate_bits(layers, budget);
  EXPECT_LE(a.cost, budget);
  EXPECT_EQ(a.choice.size(), 1000u);
}

TEST(BitAllocation, InfeasibleBudgetNamesTheMinimum) {
  const Layers layers = {{{3, 1}, {5, 0}}, {{4.5, 2}, {7, 0}}};
  EXPECT_EQ(error_of([&] { allocate_bits(layers, 7); }),
            "bit allocation: the cheapest choice costs 7.5, more than the budget 7");
  EXPECT_NO_THROW(allocate_bits(layers, 7.5));
}

TEST(BitAllocation, RejectsBadInput) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(error_of([] { allocate_bits({{{1, 1}}, {}}, 10); }), "bit allocation: layer 1 has no candidates");
  EXPECT_EQ(error_of([] { allocate_bits({{{1, 1}, {-1, 0}}}, 10); }),
            "bit allocation: layer 0 candidate 1 has cost -1, not a finite value >= 0");
  EXPECT_EQ(error_of([&] { allocate_bits({{{1, nan}}}, 10); }),
            "bit allocation: layer 0 candidate 0 has error nan, not a finite value >= 0");
  EXPECT_EQ(error_of([&] { allocate_bits({{{inf, 1}}}, 10); }),
            "bit allocation: layer 0 candidate 0 has cost inf, not a finite value >= 0");
  EXPECT_EQ(error_of([] { allocate_bits({{{1, -0.5}}}, 10); }),
            "bit allocation: layer 0 candidate 0 has error -0.5, not a finite value >= 0");
  EXPECT_EQ(error_of([&] { allocate_bits({{{1, 1}}}, nan); }),
            "bit allocation: budget nan is not a finite value >= 0");
  EXPECT_EQ(error_of([] { allocate_bits({{{1, 1}}}, -1); }),
            "bit allocation: budget -1 is not a finite value >= 0");
  EXPECT_THAT(error_of([] { allocate_bits({{{1, 1}}}, 10, 0); }), HasSubstr("cost_steps 0 is not in [1,"));
}

}  // namespace
}  // namespace qf::algo
