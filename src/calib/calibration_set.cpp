#include "calib/calibration_set.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <unordered_set>

#include "core/error.h"

namespace qf::calib {
namespace {

// Uniform in [0, n) by rejection: drawing again below 2^64 mod n leaves a
// range that is a multiple of n, so the modulo is unbiased. The standard's
// distributions are implementation-defined; mt19937_64's output is not.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;
  while (true) {
    const uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

// [0, 1) from the top 53 bits.
double uniform_unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// A uniformly random k-subset of [0, m), sorted (Floyd's algorithm: k draws,
// no O(m) memory).
std::vector<int64_t> random_subset(std::mt19937_64& rng, int64_t m, int64_t k) {
  std::unordered_set<int64_t> chosen;
  chosen.reserve(static_cast<size_t>(k));
  for (int64_t j = m - k; j < m; ++j) {
    const auto t = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(j) + 1));
    chosen.insert(chosen.count(t) ? j : t);
  }
  std::vector<int64_t> out(chosen.begin(), chosen.end());
  std::sort(out.begin(), out.end());
  return out;
}

double squared_distance(const float* a, const double* b, int64_t dim) {
  double s = 0.0;
  for (int64_t d = 0; d < dim; ++d) {
    const double diff = static_cast<double>(a[d]) - b[d];
    s += diff * diff;
  }
  return s;
}

class KMeans {
 public:
  KMeans(std::span<const float> features, int64_t n, int64_t dim, int64_t k)
      : x_(features.data()), n_(n), dim_(dim), k_(k),
        centroids_(static_cast<size_t>(k * dim)), assignment_(static_cast<size_t>(n), -1) {}

  // k-means++: each further centre is drawn with probability proportional to
  // the squared distance to the nearest centre so far.
  void seed(std::mt19937_64& rng) {
    std::vector<double> nearest(static_cast<size_t>(n_), std::numeric_limits<double>::infinity());
    std::vector<char> taken(static_cast<size_t>(n_), 0);
    int64_t pick = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(n_)));
    for (int64_t c = 0; c < k_; ++c) {
      if (c > 0) pick = draw(rng, nearest, taken);
      taken[static_cast<size_t>(pick)] = 1;
      std::copy_n(x_ + pick * dim_, dim_, centroid(c));
      for (int64_t i = 0; i < n_; ++i)
        nearest[static_cast<size_t>(i)] = std::min(nearest[static_cast<size_t>(i)], distance(i, c));
    }
  }

  // Lloyd iterations; returns when no assignment changes.
  void refine(int max_iter) {
    assign();
    for (int it = 0; it < max_iter; ++it) {
      update_centroids();
      if (!assign()) break;
    }
  }

  // Per cluster the member nearest its centroid. A cluster left empty (only
  // possible with duplicate points) takes the nearest row not yet chosen, so
  // there are always k distinct rows.
  std::vector<int64_t> representatives() const {
    std::vector<int64_t> best(static_cast<size_t>(k_), -1);
    std::vector<double> best_d(static_cast<size_t>(k_), std::numeric_limits<double>::infinity());
    for (int64_t i = 0; i < n_; ++i) {
      const int64_t c = assignment_[static_cast<size_t>(i)];
      const double d = distance(i, c);
      if (d < best_d[static_cast<size_t>(c)]) {
        best_d[static_cast<size_t>(c)] = d;
        best[static_cast<size_t>(c)] = i;
      }
    }
    std::vector<char> used(static_cast<size_t>(n_), 0);
    for (int64_t r : best)
      if (r >= 0) used[static_cast<size_t>(r)] = 1;
    for (int64_t c = 0; c < k_; ++c) {
      if (best[static_cast<size_t>(c)] >= 0) continue;
      int64_t pick = -1;
      double pick_d = std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < n_; ++i) {
        if (used[static_cast<size_t>(i)]) continue;
        const double d = distance(i, c);
        if (pick < 0 || d < pick_d) {
          pick = i;
          pick_d = d;
        }
      }
      used[static_cast<size_t>(pick)] = 1;
      best[static_cast<size_t>(c)] = pick;
    }
    std::sort(best.begin(), best.end());
    return best;
  }

 private:
  double* centroid(int64_t c) { return centroids_.data() + c * dim_; }
  const double* centroid(int64_t c) const { return centroids_.data() + c * dim_; }
  double distance(int64_t i, int64_t c) const { return squared_distance(x_ + i * dim_, centroid(c), dim_); }

  // When every remaining row coincides with a centre (duplicates), the
  // weights are all zero: take the first row not yet a centre instead.
  int64_t draw(std::mt19937_64& rng, const std::vector<double>& weight, const std::vector<char>& taken) const {
    double total = 0.0;
    for (int64_t i = 0; i < n_; ++i)
      if (!taken[static_cast<size_t>(i)]) total += weight[static_cast<size_t>(i)];
    if (total > 0.0) {
      const double r = uniform_unit(rng) * total;
      double acc = 0.0;
      int64_t last = -1;
      for (int64_t i = 0; i < n_; ++i) {
        if (taken[static_cast<size_t>(i)] || weight[static_cast<size_t>(i)] <= 0.0) continue;
        acc += weight[static_cast<size_t>(i)];
        last = i;
        if (r < acc) return i;
      }
      return last;  // r within rounding of the total
    }
    for (int64_t i = 0; i < n_; ++i)
      if (!taken[static_cast<size_t>(i)]) return i;
    fail("internal: k-means++ ran out of rows");
  }

  // Nearest centroid per row (the lower index on a tie); true if any changed.
  bool assign() {
    bool changed = false;
    for (int64_t i = 0; i < n_; ++i) {
      int64_t best = 0;
      double best_d = distance(i, 0);
      for (int64_t c = 1; c < k_; ++c) {
        const double d = distance(i, c);
        if (d < best_d) {
          best_d = d;
          best = c;
        }
      }
      changed |= assignment_[static_cast<size_t>(i)] != best;
      assignment_[static_cast<size_t>(i)] = best;
    }
    return changed;
  }

  // An empty cluster keeps its centroid.
  void update_centroids() {
    std::vector<double> sum(centroids_.size(), 0.0);
    std::vector<int64_t> members(static_cast<size_t>(k_), 0);
    for (int64_t i = 0; i < n_; ++i) {
      const int64_t c = assignment_[static_cast<size_t>(i)];
      ++members[static_cast<size_t>(c)];
      for (int64_t d = 0; d < dim_; ++d) sum[static_cast<size_t>(c * dim_ + d)] += x_[i * dim_ + d];
    }
    for (int64_t c = 0; c < k_; ++c) {
      const int64_t m = members[static_cast<size_t>(c)];
      if (m == 0) continue;
      for (int64_t d = 0; d < dim_; ++d)
        centroid(c)[d] = sum[static_cast<size_t>(c * dim_ + d)] / static_cast<double>(m);
    }
  }

  const float* x_;
  int64_t n_, dim_, k_;
  std::vector<double> centroids_;  // [k, dim]
  std::vector<int64_t> assignment_;
};

}  // namespace

std::vector<TokenSequence> sample_sequences(std::span<const int32_t> tokens, int64_t count, int64_t length,
                                            uint64_t seed) {
  QF_CHECK(count > 0, "calibration set: sequence count must be positive, got {}", count);
  QF_CHECK(length > 0, "calibration set: sequence length must be positive, got {}", length);
  const auto n = static_cast<int64_t>(tokens.size());
  QF_CHECK(n >= length, "calibration text has {} tokens, fewer than one sequence of {}", n, length);
  int64_t needed = 0;
  QF_CHECK(!__builtin_mul_overflow(count, length, &needed),
           "calibration text has {} tokens, far fewer than {} sequences of {} need", n, count, length);
  QF_CHECK(needed <= n, "calibration text has {} tokens, fewer than the {} needed for {} disjoint sequences of {}",
           n, needed, count, length);
  // A placement of `count` disjoint windows is a choice of which `count` of
  // the m = slack + count items (free tokens and windows, in text order) are
  // windows, so a uniform count-subset of [0, m) gives a uniform placement;
  // the j-th chosen item p starts at p + j * (length - 1).
  const int64_t m = n - count * (length - 1);
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> slots = random_subset(rng, m, count);
  std::vector<TokenSequence> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t j = 0; j < count; ++j) {
    const int64_t start = slots[static_cast<size_t>(j)] + j * (length - 1);
    const auto first = tokens.begin() + start;
    out.emplace_back(first, first + length);
  }
  return out;
}

std::vector<int64_t> select_diverse(std::span<const float> features, int64_t n, int64_t dim, int64_t k,
                                    uint64_t seed, int max_iter) {
  QF_CHECK(n > 0 && dim > 0, "select_diverse: need a positive row count and dimension, got {} x {}", n, dim);
  QF_CHECK(static_cast<int64_t>(features.size()) / dim == n && static_cast<int64_t>(features.size()) % dim == 0,
           "select_diverse: {} feature values are not {} rows x {} dims", features.size(), n, dim);
  QF_CHECK(k > 0 && k <= n, "select_diverse: k = {} is not in [1, {}] (the number of rows)", k, n);
  QF_CHECK(max_iter >= 0, "select_diverse: max_iter {} is negative", max_iter);
  for (size_t i = 0; i < features.size(); ++i)
    QF_CHECK(std::isfinite(features[i]), "select_diverse: feature row {}, dim {} is not finite",
             static_cast<int64_t>(i) / dim, static_cast<int64_t>(i) % dim);
  if (k == n) {
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), int64_t{0});
    return all;
  }
  std::mt19937_64 rng(seed);
  KMeans km(features, n, dim, k);
  km.seed(rng);
  km.refine(max_iter);
  return km.representatives();
}

}  // namespace qf::calib
