// Mixed precision under a size budget: every layer has a few candidate
// schemes, each with a storage cost and a measured sensitivity (the quality
// lost when only that layer is quantized that way); pick one candidate per
// layer minimising the summed sensitivity with the summed cost within budget.
// This is a multiple-choice knapsack, solved exactly by dynamic programming
// over costs rounded up to a resolution fine enough for the budget.
#pragma once

#include <cstdint>
#include <vector>

namespace qf::algo {

struct Candidate {
  double cost = 0.0;   // storage bits (or any additive size unit)
  double error = 0.0;  // sensitivity, >= 0 (additive across layers)
};

struct Allocation {
  std::vector<int> choice;  // index into each layer's candidates
  double cost = 0.0;        // exact summed cost of the choice (not rounded)
  double error = 0.0;       // summed error of the choice
};

// layers[i] lists layer i's candidates (at least one each, at most 32767).
// `cost_steps` is the DP resolution: costs are rounded *up* to multiples of
// budget / cost_steps, so the chosen allocation never exceeds the budget; the
// result is optimal for the rounded costs (exactly optimal when every cost is
// a multiple of the unit). Among equally good choices the lexicographically
// first wins (lower index in earlier layers). When rounding leaves no
// feasible choice although the exact cheapest one fits (a budget at or just
// above the minimum), the cheapest one is returned. Time is
// O(layers x cost_steps x candidates), memory 2 bytes per layer and step.
// Throws qf::Error when even the cheapest choice for every layer exceeds the
// budget (naming the minimum), or on a layer with no candidates, negative or
// non-finite costs, errors or budget, or cost_steps outside [1, 1e8].
Allocation allocate_bits(const std::vector<std::vector<Candidate>>& layers, double budget,
                         int64_t cost_steps = 20000);

}  // namespace qf::algo
