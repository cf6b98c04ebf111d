// The prefix-sum KL threshold search of entropy_clip against a direct,
// bin-by-bin computation of the documented definition on random histograms.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "calib/clipping.h"
#include "calib/histogram.h"

namespace qf::calib {
namespace {

// KL(P || Q) for the window [0, i), straight from the definition in clipping.h.
double naive_kl(std::span<const uint64_t> counts, int64_t i, int levels) {
  const auto n = static_cast<int64_t>(counts.size());
  double total = 0.0;
  for (int64_t b = 0; b < n; ++b) total += static_cast<double>(counts[static_cast<size_t>(b)]);
  std::vector<double> p(static_cast<size_t>(i)), q(static_cast<size_t>(i), 0.0);
  double inside = 0.0;
  for (int64_t b = 0; b < i; ++b) {
    p[static_cast<size_t>(b)] = static_cast<double>(counts[static_cast<size_t>(b)]);
    inside += p[static_cast<size_t>(b)];
  }
  if (inside <= 0.0) return std::numeric_limits<double>::infinity();
  p[static_cast<size_t>(i - 1)] += total - inside;  // fold the clipped mass
  for (int g = 0; g < levels; ++g) {
    const int64_t b0 = i * g / levels, b1 = i * (g + 1) / levels;
    double own = 0.0;
    int nonzero = 0;
    for (int64_t b = b0; b < b1; ++b) {
      own += static_cast<double>(counts[static_cast<size_t>(b)]);
      nonzero += p[static_cast<size_t>(b)] > 0.0 ? 1 : 0;
    }
    for (int64_t b = b0; b < b1; ++b) {
      if (p[static_cast<size_t>(b)] > 0.0) q[static_cast<size_t>(b)] = own / nonzero;
    }
  }
  double kl = 0.0;
  for (int64_t b = 0; b < i; ++b) {
    const double pb = p[static_cast<size_t>(b)] / total;
    const double qb = q[static_cast<size_t>(b)] / inside;
    if (pb == 0.0) continue;
    if (qb == 0.0) return std::numeric_limits<double>::infinity();
    kl += pb * std::log(pb / qb);
  }
  return std::max(0.0, kl);
}

TEST(KlSearch, PrefixSumsMatchTheDirectComputation) {
  std::mt19937 rng(1234);
  int checked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int bins = std::uniform_int_distribution<int>(16, 160)(rng);
    const int levels = 1 << std::uniform_int_distribution<int>(1, 3)(rng);  // 2, 4, 8
    if (bins < 2 * levels) continue;
    Histogram h(bins, Histogram::Domain::Magnitude);
    // A mixture: a bulk, sparse outliers, sometimes gaps (empty bins).
    std::vector<float> values;
    const int n = std::uniform_int_distribution<int>(20, 3000)(rng);
    std::normal_distribution<float> bulk(0.0f, 1.0f);
    std::exponential_distribution<float> tail(0.2f);
    std::uniform_int_distribution<int> pick(0, 9);
    const bool gappy = trial % 3 == 0;
    for (int k = 0; k < n; ++k) {
      float v = pick(rng) == 0 ? tail(rng) * 3.0f : bulk(rng);
      if (gappy) v = std::round(v * 2.0f) / 2.0f;  // values on a coarse lattice leave empty bins
      values.push_back(v);
    }
    h.add(values);
    if (h.width() == 0.0) continue;
    const auto counts = h.counts();
    // Direct search: i in [levels, bins), first strict minimum, else bins.
    int64_t best = bins;
    double best_kl = naive_kl(counts, bins, levels);
    for (int64_t i = levels; i < bins; ++i) {
      const double kl = naive_kl(counts, i, levels);
      if (kl < best_kl) {
        best_kl = kl;
        best = i;
      }
    }
    const double expected = std::min(h.edge(best), h.max());
    const Range got = entropy_clip(h, levels);
    if (static_cast<double>(got.hi) != static_cast<float>(expected)) {
      // Only an exact tie (up to rounding) may pick another threshold.
      int64_t chosen = -1;
      for (int64_t i = levels; i <= bins; ++i) {
        if (static_cast<float>(std::min(h.edge(i), h.max())) == got.hi) chosen = i;
      }
      ASSERT_GE(chosen, 0) << "trial " << trial << ": threshold " << got.hi << " is no bin edge";
      const double kl_chosen = naive_kl(counts, chosen, levels);
      EXPECT_NEAR(kl_chosen, best_kl, 1e-9 * std::max(1.0, best_kl))
          << "trial " << trial << ": fast picked bin " << chosen << ", direct picked " << best;
    }
    EXPECT_EQ(got.lo, -got.hi);
    // Spot-check individual KL values through the public search indirectly:
    // every finite naive value is non-negative.
    for (int64_t i = levels; i <= bins; ++i) {
      const double kl = naive_kl(counts, i, levels);
      if (std::isfinite(kl)) {
        ASSERT_GE(kl, 0.0);
      }
    }
    ++checked;
  }
  EXPECT_GT(checked, 30);
}

}  // namespace
}  // namespace qf::calib
