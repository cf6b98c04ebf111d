#include "algo/bit_allocation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "core/error.h"

namespace qf::algo {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Back-pointers are int16 so that 1000 layers x 20000 steps fit in 40 MB.
constexpr size_t kMaxCandidates = std::numeric_limits<int16_t>::max();
constexpr int64_t kMaxSteps = 100'000'000;
constexpr int64_t kMaxTableEntries = int64_t{1} << 30;

void check_inputs(const std::vector<std::vector<Candidate>>& layers, double budget, int64_t cost_steps) {
  QF_CHECK(std::isfinite(budget) && budget >= 0.0, "bit allocation: budget {} is not a finite value >= 0",
           budget);
  QF_CHECK(cost_steps >= 1 && cost_steps <= kMaxSteps, "bit allocation: cost_steps {} is not in [1, {}]",
           cost_steps, kMaxSteps);
  QF_CHECK(static_cast<int64_t>(layers.size()) <= kMaxTableEntries / (cost_steps + 1),
           "bit allocation: {} layers x {} cost steps is too large a table", layers.size(), cost_steps);
  for (size_t i = 0; i < layers.size(); ++i) {
    QF_CHECK(!layers[i].empty(), "bit allocation: layer {} has no candidates", i);
    QF_CHECK(layers[i].size() <= kMaxCandidates, "bit allocation: layer {} has {} candidates, more than {}", i,
             layers[i].size(), kMaxCandidates);
    for (size_t j = 0; j < layers[i].size(); ++j) {
      const Candidate& c = layers[i][j];
      QF_CHECK(std::isfinite(c.cost) && c.cost >= 0.0,
               "bit allocation: layer {} candidate {} has cost {}, not a finite value >= 0", i, j, c.cost);
      QF_CHECK(std::isfinite(c.error) && c.error >= 0.0,
               "bit allocation: layer {} candidate {} has error {}, not a finite value >= 0", i, j, c.error);
    }
  }
}

// Sums are taken layer by layer from the first, so the reported numbers do
// not depend on how the choice was found.
Allocation make_allocation(const std::vector<std::vector<Candidate>>& layers, std::vector<int> choice) {
  Allocation a;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Candidate& c = layers[i][static_cast<size_t>(choice[i])];
    a.cost += c.cost;
    a.error += c.error;
  }
  a.choice = std::move(choice);
  return a;
}

// Per layer the cheapest candidate (then the lowest error, then the lowest
// index): the allocation that decides feasibility.
Allocation cheapest(const std::vector<std::vector<Candidate>>& layers) {
  std::vector<int> choice(layers.size(), 0);
  for (size_t i = 0; i < layers.size(); ++i) {
    for (size_t j = 1; j < layers[i].size(); ++j) {
      const Candidate& c = layers[i][j];
      const Candidate& best = layers[i][static_cast<size_t>(choice[i])];
      if (c.cost < best.cost || (c.cost == best.cost && c.error < best.error)) choice[i] = static_cast<int>(j);
    }
  }
  return make_allocation(layers, std::move(choice));
}

// Cost in units of `unit`, rounded up; steps + 1 marks a candidate that does
// not fit at all. The correction after ceil() guards against the division
// rounding c / unit down to an integer below the true quotient.
int64_t rounded_cost(double cost, double unit, int64_t steps) {
  if (cost == 0.0) return 0;
  if (unit == 0.0) return steps + 1;
  const double q = std::ceil(cost / unit);
  if (q > static_cast<double>(steps)) return steps + 1;
  auto w = static_cast<int64_t>(q);
  if (static_cast<double>(w) * unit < cost) ++w;
  return std::min(w, steps + 1);
}

// best[b] = least error of layers i.. within b units, filled from the last
// layer backwards so that reading the back-pointers forwards from layer 0,
// where each holds the lowest index reaching the minimum, yields the
// lexicographically first optimal choice.
std::optional<std::vector<int>> solve(const std::vector<std::vector<Candidate>>& layers, double budget, int64_t steps) {
  const double unit = budget / static_cast<double>(steps);
  const auto width = static_cast<size_t>(steps + 1);
  std::vector<double> next(width, 0.0), best(width);
  std::vector<int16_t> back(layers.size() * width, -1);
  std::vector<int64_t> w;
  for (size_t i = layers.size(); i-- > 0;) {
    const auto& cands = layers[i];
    w.resize(cands.size());
    for (size_t j = 0; j < cands.size(); ++j) w[j] = rounded_cost(cands[j].cost, unit, steps);
    int16_t* row = back.data() + i * width;
    for (int64_t b = 0; b <= steps; ++b) {
      double e = kInf;
      for (size_t j = 0; j < cands.size(); ++j) {
        if (w[j] > b) continue;
        const double v = cands[j].error + next[static_cast<size_t>(b - w[j])];
        if (v < e) {
          e = v;
          row[b] = static_cast<int16_t>(j);
        }
      }
      best[static_cast<size_t>(b)] = e;
    }
    next.swap(best);
  }
  if (next[width - 1] == kInf) return std::nullopt;
  std::vector<int> choice(layers.size());
  int64_t b = steps;
  for (size_t i = 0; i < layers.size(); ++i) {
    const int16_t j = back[i * width + static_cast<size_t>(b)];
    choice[i] = j;
    b -= rounded_cost(layers[i][static_cast<size_t>(j)].cost, unit, steps);
  }
  return choice;
}

}  // namespace

Allocation allocate_bits(const std::vector<std::vector<Candidate>>& layers, double budget, int64_t cost_steps) {
  check_inputs(layers, budget, cost_steps);
  Allocation floor = cheapest(layers);
  QF_CHECK(floor.cost <= budget, "bit allocation: the cheapest choice costs {}, more than the budget {}",
           floor.cost, budget);
  std::optional<std::vector<int>> choice = solve(layers, budget, cost_steps);
  // Rounding up can make the cheapest choice itself miss the rounded budget
  // (a budget at or just above the minimum); it is still within the exact one.
  if (!choice) return floor;
  Allocation a = make_allocation(layers, std::move(*choice));
  // Only floating-point noise in unit * steps could push the sum past the
  // budget; the contract is never to exceed it.
  return a.cost <= budget ? a : floor;
}

}  // namespace qf::algo
