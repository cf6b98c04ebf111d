#include "analysis/activation_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace qf::analysis {
namespace {

using detail::Moments;

constexpr double kOutlierSigmas = 6.0;

// Pebay (2008), pairwise update of central moments: exact in exact
// arithmetic, so merging batch moments equals one pass over all values.
Moments merge(const Moments& a, const Moments& b) {
  if (a.n == 0) return b;
  if (b.n == 0) return a;
  const double n = a.n + b.n;
  const double d = b.mean - a.mean;
  const double d_n = d / n;
  const double d2 = d * d_n * a.n * b.n;  // d^2 na nb / n
  Moments m;
  m.n = n;
  m.mean = a.mean + d_n * b.n;
  m.m2 = a.m2 + b.m2 + d2;
  m.m3 = a.m3 + b.m3 + d2 * d_n * (a.n - b.n) + 3.0 * d_n * (a.n * b.m2 - b.n * a.m2);
  m.m4 = a.m4 + b.m4 + d2 * d_n * d_n * (a.n * a.n - a.n * b.n + b.n * b.n) +
         6.0 * d_n * d_n * (a.n * a.n * b.m2 + b.n * b.n * a.m2) + 4.0 * d_n * (a.n * b.m3 - b.n * a.m3);
  return m;
}

// Moments of every column of a batch, two passes (the batch is in memory).
std::vector<Moments> batch_moments(const float* x, int64_t rows, int64_t channels) {
  std::vector<Moments> m(static_cast<size_t>(channels));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < channels; ++c) m[static_cast<size_t>(c)].mean += x[i * channels + c];
  for (auto& mc : m) {
    mc.n = static_cast<double>(rows);
    mc.mean /= mc.n;
  }
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      Moments& mc = m[static_cast<size_t>(c)];
      const double d = x[i * channels + c] - mc.mean;
      const double d2 = d * d;
      mc.m2 += d2;
      mc.m3 += d2 * d;
      mc.m4 += d2 * d2;
    }
  }
  return m;
}

void check_finite(std::span<const float> batch, int64_t channels) {
  for (size_t i = 0; i < batch.size(); ++i) {
    if (std::isfinite(batch[i])) continue;
    const auto at = static_cast<int64_t>(i);
    fail("activation batch has {} at row {}, channel {} (of {} channels)",
         std::isnan(batch[i]) ? "a NaN" : "an infinite value", at / channels, at % channels, channels);
  }
}

Moments overall(const std::vector<Moments>& per_channel) {
  Moments all;
  for (const Moments& m : per_channel) all = merge(all, m);
  return all;
}

double stddev_of(const Moments& m) { return m.n > 0 ? std::sqrt(m.m2 / m.n) : 0.0; }

// Copies, as nth_element reorders.
double median(std::vector<float> v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
}

double max_median_ratio(const std::vector<float>& absmax) {
  const double top = *std::max_element(absmax.begin(), absmax.end());
  const double med = median(absmax);
  if (med > 0) return top / med;
  return top > 0 ? std::numeric_limits<double>::infinity() : 1.0;
}

}  // namespace

ActivationStats::ActivationStats(int64_t channels) : channels_(channels) {
  QF_CHECK(channels > 0, "activation stats: channel count must be positive, got {}", channels);
  const auto n = static_cast<size_t>(channels);
  moments_.resize(n);
  abssum_.assign(n, 0.0);
  min_.assign(n, std::numeric_limits<float>::infinity());
  max_.assign(n, -std::numeric_limits<float>::infinity());
}

int64_t ActivationStats::rows_of(std::span<const float> batch) const {
  const auto size = static_cast<int64_t>(batch.size());
  QF_CHECK(size % channels_ == 0, "activation batch of {} values is not a whole number of rows of {} channels",
           size, channels_);
  check_finite(batch, channels_);
  return size / channels_;
}

void ActivationStats::add(std::span<const float> batch) {
  QF_CHECK(recounted_ == 0, "activation stats: add() after recount() (the second pass needs the final moments)");
  const int64_t rows = rows_of(batch);
  if (rows == 0) return;
  const std::vector<Moments> m = batch_moments(batch.data(), rows, channels_);
  for (int64_t c = 0; c < channels_; ++c) {
    const auto cc = static_cast<size_t>(c);
    moments_[cc] = merge(moments_[cc], m[cc]);
  }
  for (int64_t i = 0; i < rows; ++i) {
    const float* row = batch.data() + i * channels_;
    for (int64_t c = 0; c < channels_; ++c) {
      const auto cc = static_cast<size_t>(c);
      abssum_[cc] += std::fabs(row[c]);
      min_[cc] = std::min(min_[cc], row[c]);
      max_[cc] = std::max(max_[cc], row[c]);
    }
  }
  tokens_ += rows;
}

void ActivationStats::recount(std::span<const float> batch) {
  QF_CHECK(tokens_ > 0, "activation stats: recount() before any add()");
  const int64_t rows = rows_of(batch);
  QF_CHECK(recounted_ + rows <= tokens_, "activation stats: recount() saw {} rows, more than the {} added",
           recounted_ + rows, tokens_);
  const Moments all = overall(moments_);
  const double limit = kOutlierSigmas * stddev_of(all);
  int64_t count = 0;
  if (limit > 0) {
    for (float v : batch) count += std::fabs(v - all.mean) > limit;
  }
  outlier_values_ += count;
  recounted_ += rows;
}

ActivationReport ActivationStats::report() const {
  QF_CHECK(tokens_ > 0, "activation stats: no values added ({} channels)", channels_);
  ActivationReport r;
  r.channels = channels_;
  r.tokens = tokens_;
  const Moments all = overall(moments_);
  r.mean = all.mean;
  r.stddev = stddev_of(all);
  r.kurtosis = all.m2 > 0 ? all.n * all.m4 / (all.m2 * all.m2) : 0.0;
  r.outlier_values = recounted_ > 0 ? outlier_values_ : -1;
  r.channel_absmax.resize(static_cast<size_t>(channels_));
  r.channel_absmean.resize(static_cast<size_t>(channels_));
  for (size_t c = 0; c < r.channel_absmax.size(); ++c) {
    r.channel_absmax[c] = std::max(std::fabs(min_[c]), std::fabs(max_[c]));
    r.channel_absmean[c] = static_cast<float>(abssum_[c] / static_cast<double>(tokens_));
  }
  r.absmax = *std::max_element(r.channel_absmax.begin(), r.channel_absmax.end());
  r.max_median_ratio = max_median_ratio(r.channel_absmax);
  const double limit = kOutlierSigmas * r.stddev;
  for (int64_t c = 0; c < channels_; ++c) {
    const auto cc = static_cast<size_t>(c);
    if (limit > 0 && (max_[cc] - r.mean > limit || r.mean - min_[cc] > limit)) r.outlier_channels.push_back(c);
  }
  std::stable_sort(r.outlier_channels.begin(), r.outlier_channels.end(), [&](int64_t a, int64_t b) {
    return r.channel_absmax[static_cast<size_t>(a)] > r.channel_absmax[static_cast<size_t>(b)];
  });
  return r;
}

}  // namespace qf::analysis
