#include "calib/histogram.h"

#include <algorithm>

#include "core/error.h"

namespace qf::calib {

Histogram::Histogram(int bins, Domain domain) : domain_(domain) {
  QF_CHECK(bins >= 2, "a histogram needs at least 2 bins, got {}", bins);
  counts_.assign(static_cast<size_t>(bins), 0);
}

bool Histogram::fits(double lo, double hi, double width) const {
  const double span_bins = std::floor(hi / width) - std::floor(lo / width);
  return span_bins <= static_cast<double>(bins() - 1);
}

void Histogram::reserve(float lo_raw, float hi_raw) {
  QF_CHECK(std::isfinite(lo_raw) && std::isfinite(hi_raw) && lo_raw <= hi_raw,
           "histogram range [{}, {}] is not a finite interval", lo_raw, hi_raw);
  double lo = std::min<double>(lo_raw, 0.0);
  double hi = std::max<double>(hi_raw, 0.0);
  if (domain_ == Domain::Magnitude) {
    hi = std::max(-lo, hi);
    lo = 0.0;
  }
  const int n = bins();

  if (width_ == 0.0) {
    if (hi == 0.0 && lo == 0.0) return;  // still nothing but zeros
    // Leave a little slack so the end points land inside the last bins even
    // after rounding: floor(hi/w) - floor(lo/w) <= n - 1.
    width_ = lo == 0.0 ? hi / (n - 0.5) : (hi - lo) / (n - 1.5);
    while (!fits(lo, hi, width_)) width_ *= 2.0;
    first_ = grid_index(lo);
    if (total_ > 0) counts_[static_cast<size_t>(slot(0.0))] += total_;  // the zeros seen so far
    return;
  }

  if (total_ > 0) {
    lo = std::min(lo, min_);
    hi = std::max(hi, max_);
  }
  // Compared in double: lo / width_ may be far outside the int64 range.
  if (std::floor(lo / width_) >= static_cast<double>(first_) &&
      std::floor(hi / width_) < static_cast<double>(first_ + n)) {
    return;
  }

  // Smallest integer factor k with everything inside n bins of width k * width_.
  const double span = hi - lo;
  const double k_lo = std::max(1.0, std::floor(span / (n * width_)));
  const double k_hi = std::max(1.0, std::ceil(span / ((n - 1) * width_)));
  double k = k_hi;
  if (k_hi - k_lo <= 64.0) {
    for (double c = k_lo; c <= k_hi; c += 1.0) {
      if (fits(lo, hi, c * width_)) {
        k = c;
        break;
      }
    }
  }
  while (!fits(lo, hi, k * width_)) k *= 2.0;  // rounding safety net

  const double new_width = k * width_;
  const int64_t new_first = static_cast<int64_t>(std::floor(lo / new_width));
  std::vector<uint64_t> merged(counts_.size(), 0);
  for (int i = 0; i < n; ++i) {
    if (counts_[static_cast<size_t>(i)] == 0) continue;
    // Old bin j covers [j w, (j+1) w), which lies inside new bin floor(j / k).
    const double j = static_cast<double>(first_ + i);
    int64_t slot_new = static_cast<int64_t>(std::floor(j / k)) - new_first;
    slot_new = std::clamp<int64_t>(slot_new, 0, n - 1);
    merged[static_cast<size_t>(slot_new)] += counts_[static_cast<size_t>(i)];
  }
  counts_ = std::move(merged);
  width_ = new_width;
  first_ = new_first;
}

void Histogram::add(std::span<const float> values) {
  if (values.empty()) return;
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  reserve(*lo, *hi);
  for (float x : values) insert(x);
}

double Histogram::quantile(double q) const {
  QF_CHECK(total_ > 0, "quantile of an empty histogram");
  q = std::clamp(q, 0.0, 1.0);
  if (width_ == 0.0) return 0.0;  // only zeros
  const double target = q * static_cast<double>(total_);
  double cum = 0.0;
  for (int i = 0; i < bins(); ++i) {
    const double c = static_cast<double>(counts_[static_cast<size_t>(i)]);
    if (c == 0.0) continue;
    if (cum + c >= target) {
      const double lo = std::max(edge(i), min_);
      const double hi = std::min(edge(i + 1), max_);
      const double frac = std::clamp((target - cum) / c, 0.0, 1.0);
      return std::clamp(lo + frac * (hi - lo), min_, max_);
    }
    cum += c;
  }
  return max_;
}

}  // namespace qf::calib
