#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qf::runtime {

int32_t argmax(std::span<const float> logits) {
  QF_CHECK(!logits.empty(), "cannot sample from empty logits");
  size_t best = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    QF_CHECK(!std::isnan(logits[i]), "logit {} is NaN", i);
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

Sampler::Sampler(SamplerConfig config) : config_(config), rng_(config.seed) {
  QF_CHECK(!std::isnan(config_.temperature), "sampling temperature is NaN");
  QF_CHECK(config_.top_p > 0.0f, "top_p must be in (0, 1], got {}", config_.top_p);  // false for NaN too
}

int32_t Sampler::sample(std::span<const float> logits) {
  const int32_t best = argmax(logits);  // also rejects empty and NaN logits
  if (config_.temperature <= 0.0f || config_.top_k == 1) return best;
  const size_t n = logits.size();

  // Probabilities at the temperature, relative to the best logit (whose weight is 1).
  const double inv_t = 1.0 / static_cast<double>(config_.temperature);
  const double top = logits[static_cast<size_t>(best)];
  candidates_.resize(n);
  for (size_t i = 0; i < n; ++i)
    candidates_[i] = {std::exp((static_cast<double>(logits[i]) - top) * inv_t), static_cast<int32_t>(i)};
  auto more_likely = [](const std::pair<double, int32_t>& a, const std::pair<double, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };

  size_t keep = n;
  bool sorted = false;
  if (config_.top_k > 0 && static_cast<size_t>(config_.top_k) < n) {
    keep = static_cast<size_t>(config_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep),
                      candidates_.end(), more_likely);
    sorted = true;
  }
  if (config_.top_p < 1.0f) {
    if (!sorted) std::sort(candidates_.begin(), candidates_.end(), more_likely);
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += candidates_[i].first;
    const double target = static_cast<double>(config_.top_p) * total;
    double mass = 0;
    size_t cut = 0;
    while (cut < keep) {
      mass += candidates_[cut].first;
      ++cut;
      if (mass >= target) break;
    }
    keep = cut;
  }
  if (keep == 1) return candidates_[0].second;

  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += candidates_[i].first;
  const double r = uniform01(rng_) * total;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += candidates_[i].first;
    if (r < acc) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;  // rounding left r at the very top
}

}  // namespace qf::runtime
