// A streaming histogram with a fixed number of equal-width bins whose range
// grows as values arrive, so observers can summarise an unbounded stream of
// activations in constant memory (8 bytes per bin).
//
// Bin edges lie on a grid anchored at 0: bin i covers
// [(first + i) * width, (first + i + 1) * width), and the covered range always
// contains 0 (quantization ranges always do). When a batch falls outside the
// current range, the width is multiplied by the smallest integer k that makes
// everything fit and every k old bins are merged into one new bin. Because old
// edges are a subset of the new edges, rebinning is exact: no count is ever
// split or moved to a bin its values do not belong to (unlike proportional
// redistribution). The price is resolution: after growth the data span at
// least about half of the bins, so the width is at most about
// 2 * (max(hi, 0) - min(lo, 0)) / bins.
//
// The exact minimum and maximum of everything inserted are kept as well, so
// queries can clip the first and last occupied bins to the real data.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace qf::calib {

class Histogram {
 public:
  // Signed: values are binned as they are. Magnitude: |x| is binned (the
  // distribution symmetric quantization cares about).
  enum class Domain { Signed, Magnitude };

  // bins >= 2.
  explicit Histogram(int bins, Domain domain = Domain::Signed);

  // Makes room for raw values in [lo, hi] (lo <= hi, both finite); insert()
  // then accepts any x in that range. Rebins if needed.
  void reserve(float lo, float hi);
  // Adds one raw value previously covered by reserve().
  void insert(float x) {
    const double v = domain_ == Domain::Magnitude ? std::fabs(static_cast<double>(x)) : x;
    ++total_;
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
    if (width_ == 0.0) return;  // only zeros so far; they are binned once a width exists
    ++counts_[static_cast<size_t>(slot(v))];
  }
  // Convenience: reserve() the range of `values`, then insert() them all.
  // Non-finite values are the caller's business (observers reject them first).
  void add(std::span<const float> values);

  Domain domain() const { return domain_; }
  int bins() const { return static_cast<int>(counts_.size()); }
  uint64_t total() const { return total_; }
  // Exact smallest and largest binned value (|x| in the Magnitude domain);
  // 0 and 0 while empty.
  double min() const { return total_ ? min_ : 0.0; }
  double max() const { return total_ ? max_ : 0.0; }
  // 0 while nothing but zeros has been seen (all counts are then in total()).
  double width() const { return width_; }
  // Lower edge of bin i (i in [0, bins()]; edge(bins()) is the upper end).
  double edge(int64_t i) const { return static_cast<double>(first_ + i) * width_; }
  // The bin holding the value 0.
  int64_t zero_bin() const { return -first_; }
  std::span<const uint64_t> counts() const { return counts_; }

  // The value below which a fraction q in [0, 1] of the binned values lies,
  // interpolating linearly inside the bin where the cumulative count crosses
  // q * total (values are assumed uniform within a bin, and the first and last
  // occupied bins are clipped to the exact min and max). For a density that is
  // smooth at the bin scale the error is a small fraction of one bin width; it
  // is never more than one bin width. Requires total() > 0.
  double quantile(double q) const;

 private:
  // floor(v / width_), clamped so the conversion to int64 is always defined
  // (callers that compare against the current range do so in double first).
  int64_t grid_index(double v) const {
    constexpr double kLimit = 4611686018427387904.0;  // 2^62
    return static_cast<int64_t>(std::clamp(std::floor(v / width_), -kLimit, kLimit));
  }
  int64_t slot(double v) const {
    const int64_t i = grid_index(v) - first_;
    // Rounding at an exact edge may land one bin out; keep it in range.
    return i < 0 ? 0 : (i >= bins() ? bins() - 1 : i);
  }
  bool fits(double lo, double hi, double width) const;

  Domain domain_;
  std::vector<uint64_t> counts_;
  double width_ = 0.0;
  int64_t first_ = 0;  // grid index of bin 0; always in [-(bins - 1), 0]
  uint64_t total_ = 0;
  double min_ = std::numeric_limits<double>::infinity();
  double max_ = -std::numeric_limits<double>::infinity();
};

}  // namespace qf::calib
