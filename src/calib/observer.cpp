#include "calib/observer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "calib/histogram.h"
#include "core/error.h"

namespace qf::calib {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Min and max of each group (column, or the whole batch); throws on NaN/Inf
// naming the first offending position.
std::vector<Range> batch_ranges(const float* x, int64_t rows, int64_t channels, bool per_channel) {
  std::vector<Range> r(per_channel ? static_cast<size_t>(channels) : 1, Range{kInf, -kInf});
  bool finite = true;
  if (per_channel) {
    for (int64_t i = 0; i < rows; ++i) {
      const float* row = x + i * channels;
      for (int64_t c = 0; c < channels; ++c) {
        const float v = row[c];
        finite &= std::isfinite(v);
        r[static_cast<size_t>(c)].lo = std::min(r[static_cast<size_t>(c)].lo, v);
        r[static_cast<size_t>(c)].hi = std::max(r[static_cast<size_t>(c)].hi, v);
      }
    }
  } else {
    float lo = kInf;
    float hi = -kInf;
    const int64_t n = rows * channels;
    for (int64_t i = 0; i < n; ++i) {
      finite &= std::isfinite(x[i]);
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    r[0] = {lo, hi};
  }
  if (!finite) {
    const int64_t n = rows * channels;
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) {
        fail("calibration batch has {} at row {}, channel {} (of {} rows x {} channels)",
             std::isnan(x[i]) ? "a NaN" : "an infinite value", i / channels, i % channels, rows,
             channels);
      }
    }
  }
  return r;
}

class MinMaxObserver final : public Observer {
 public:
  using Observer::Observer;

 protected:
  void update(const float*, int64_t, int64_t, const std::vector<Range>& batch) override {
    if (range_.empty()) {
      range_ = batch;
      return;
    }
    for (size_t g = 0; g < range_.size(); ++g) {
      range_[g].lo = std::min(range_[g].lo, batch[g].lo);
      range_[g].hi = std::max(range_[g].hi, batch[g].hi);
    }
  }
  std::vector<Range> compute(ThreadPool*) const override { return range_; }

 private:
  std::vector<Range> range_;
};

class MovingAverageObserver final : public Observer {
 public:
  using Observer::Observer;

 protected:
  void update(const float*, int64_t, int64_t, const std::vector<Range>& batch) override {
    if (avg_.empty()) {
      avg_.resize(batch.size());
      for (size_t g = 0; g < batch.size(); ++g) avg_[g] = {batch[g].lo, batch[g].hi};
      return;
    }
    const double m = options().momentum;
    for (size_t g = 0; g < avg_.size(); ++g) {
      avg_[g].lo = m * avg_[g].lo + (1.0 - m) * batch[g].lo;
      avg_[g].hi = m * avg_[g].hi + (1.0 - m) * batch[g].hi;
    }
  }
  std::vector<Range> compute(ThreadPool*) const override {
    std::vector<Range> out;
    out.reserve(avg_.size());
    for (const auto& a : avg_) out.push_back({static_cast<float>(a.lo), static_cast<float>(a.hi)});
    return out;
  }

 private:
  struct Avg {
    double lo, hi;
  };
  std::vector<Avg> avg_;
};

// Percentile, Entropy and Mse: one streaming histogram per group, searched
// when ranges() is asked for.
class HistogramObserver final : public Observer {
 public:
  explicit HistogramObserver(const ObserverOptions& o) : Observer(o) {}

 protected:
  void update(const float* data, int64_t rows, int64_t channels,
              const std::vector<Range>& batch) override {
    if (hists_.empty()) {
      const bool magnitude = options().target.symmetric || options().kind == ObserverKind::Entropy;
      const auto domain = magnitude ? Histogram::Domain::Magnitude : Histogram::Domain::Signed;
      hists_.assign(batch.size(), Histogram(options().histogram_bins, domain));
      seen_ = batch;
    } else {
      for (size_t g = 0; g < batch.size(); ++g) {
        seen_[g].lo = std::min(seen_[g].lo, batch[g].lo);
        seen_[g].hi = std::max(seen_[g].hi, batch[g].hi);
      }
    }
    for (size_t g = 0; g < batch.size(); ++g) hists_[g].reserve(batch[g].lo, batch[g].hi);
    if (hists_.size() == 1) {
      Histogram& h = hists_[0];
      const int64_t n = rows * channels;
      for (int64_t i = 0; i < n; ++i) h.insert(data[i]);
    } else {
      // Blocks of 16 channels (one cache line of each row) keep their
      // histograms cache-resident while the rows stream by.
      constexpr int64_t kBlock = 16;
      for (int64_t c0 = 0; c0 < channels; c0 += kBlock) {
        const int64_t c1 = std::min(channels, c0 + kBlock);
        for (int64_t i = 0; i < rows; ++i) {
          const float* row = data + i * channels;
          for (int64_t c = c0; c < c1; ++c) hists_[static_cast<size_t>(c)].insert(row[c]);
        }
      }
    }
  }

  std::vector<Range> compute(ThreadPool* pool) const override {
    std::vector<Range> out(hists_.size());
    auto run = [&](int64_t begin, int64_t end) {
      for (auto g = static_cast<size_t>(begin); g < static_cast<size_t>(end); ++g) {
        const Range clip = search(hists_[g], seen_[g]);
        // A symmetric clip [-a, a] may extend past the data on one side; the
        // quantization parameters of a symmetric scheme do not change when it
        // is cut back to the data, and the range says more about the data.
        Range r{std::max(clip.lo, seen_[g].lo), std::min(clip.hi, seen_[g].hi)};
        if (r.lo > r.hi) r.lo = r.hi;
        out[g] = r;
      }
    };
    const auto n = static_cast<int64_t>(hists_.size());
    if (pool && n > 1) {
      pool->parallel_for(n, run);
    } else {
      run(0, n);
    }
    return out;
  }

 private:
  Range search(const Histogram& h, const Range& seen) const {
    const ObserverOptions& o = options();
    switch (o.kind) {
      case ObserverKind::Percentile: return percentile_clip(h, o.percentile);
      case ObserverKind::Entropy: {
        const bool one_sided = seen.lo >= 0.0f || seen.hi <= 0.0f;
        return entropy_clip(h, entropy_levels(o.target, one_sided));
      }
      case ObserverKind::Mse: return mse_clip(h, o.target, o.mse_grid);
      default: break;
    }
    fail("internal: histogram observer of kind {}", observer_kind_name(o.kind));
  }

  std::vector<Histogram> hists_;
  std::vector<Range> seen_;  // exact raw min and max per group
};

void check_int_scheme(const quant::Scheme& s, std::string_view what) {
  QF_CHECK(s.format == quant::Format::Int, "{} needs an integer scheme (int2..int8), not another format",
           what);
  QF_CHECK(s.bits >= quant::kMinIntBits && s.bits <= quant::kMaxRangeIntBits,
           "{}: integer width {} is out of range [{}, {}]", what, s.bits, quant::kMinIntBits, quant::kMaxRangeIntBits);
}

}  // namespace

Observer::Observer(const ObserverOptions& options) : options_(options) {}

void Observer::observe(std::span<const float> batch, int64_t channels) {
  QF_CHECK(channels > 0, "calibration batch must have a positive channel count, got {}", channels);
  const auto size = static_cast<int64_t>(batch.size());
  QF_CHECK(size % channels == 0, "calibration batch of {} values is not a whole number of rows of {} channels",
           size, channels);
  QF_CHECK(channels_ == 0 || channels == channels_,
           "calibration batch has {} channels but earlier batches had {}", channels, channels_);
  const int64_t rows = size / channels;
  if (rows == 0) {
    channels_ = channels;
    return;
  }
  // Validate (NaN/Inf) before remembering anything: a rejected batch, even
  // the first one, must leave the observer as it was.
  const auto ranges = batch_ranges(batch.data(), rows, channels, options_.per_channel);
  channels_ = channels;
  update(batch.data(), rows, channels, ranges);
  tokens_seen_ += rows;
  ++batches_seen_;
}

void Observer::observe(const Tensor& batch) {
  QF_CHECK(!batch.empty(), "calibration batch is an empty (default-constructed) tensor");
  const int64_t channels = batch.cols();
  if (batch.dtype() == DType::F32) {
    observe(std::span<const float>(batch.data<float>(), static_cast<size_t>(batch.numel())), channels);
  } else {
    const std::vector<float> values = batch.to_f32_vector();
    observe(std::span<const float>(values), channels);
  }
}

std::vector<Range> Observer::ranges(ThreadPool* pool) const {
  QF_CHECK(tokens_seen_ > 0, "{} observer has seen no values: cannot compute a range from an empty stream",
           observer_kind_name(options_.kind));
  return compute(pool);
}

std::unique_ptr<Observer> make_observer(const ObserverOptions& o) {
  const auto name = observer_kind_name(o.kind);
  switch (o.kind) {
    case ObserverKind::MinMax: return std::make_unique<MinMaxObserver>(o);
    case ObserverKind::MovingAverage:
      QF_CHECK(o.momentum >= 0.0 && o.momentum < 1.0, "ema observer: momentum {} is not in [0, 1)", o.momentum);
      return std::make_unique<MovingAverageObserver>(o);
    case ObserverKind::Percentile:
    case ObserverKind::Entropy:
    case ObserverKind::Mse: break;
  }
  QF_CHECK(o.histogram_bins >= 16 && o.histogram_bins <= (1 << 24),
           "{} observer: histogram_bins {} is not in [16, 16777216]", name, o.histogram_bins);
  if (o.kind == ObserverKind::Percentile) {
    QF_CHECK(o.percentile > 0.0 && o.percentile <= 100.0, "percentile observer: percentile {} is not in (0, 100]",
             o.percentile);
  } else if (o.kind == ObserverKind::Entropy) {
    check_int_scheme(o.target, "kl observer");
    const int levels = entropy_levels(o.target, /*one_sided=*/true);
    QF_CHECK(o.histogram_bins >= 2 * levels,
             "kl observer: histogram_bins {} is fewer than twice the {} levels of the {}-bit {} target",
             o.histogram_bins, levels, o.target.bits, o.target.symmetric ? "symmetric" : "asymmetric");
  } else {
    check_int_scheme(o.target, "mse observer");
    QF_CHECK(o.mse_grid >= 1 && o.mse_grid <= 100000, "mse observer: mse_grid {} is not in [1, 100000]",
             o.mse_grid);
  }
  return std::make_unique<HistogramObserver>(o);
}

ObserverKind parse_observer_kind(std::string_view name) {
  if (name == "minmax") return ObserverKind::MinMax;
  if (name == "ema" || name == "moving_average") return ObserverKind::MovingAverage;
  if (name == "percentile") return ObserverKind::Percentile;
  if (name == "kl" || name == "entropy") return ObserverKind::Entropy;
  if (name == "mse") return ObserverKind::Mse;
  fail("unknown observer '{}': expected minmax, ema, percentile, kl or mse", name);
}

std::string_view observer_kind_name(ObserverKind kind) {
  switch (kind) {
    case ObserverKind::MinMax: return "minmax";
    case ObserverKind::MovingAverage: return "ema";
    case ObserverKind::Percentile: return "percentile";
    case ObserverKind::Entropy: return "kl";
    case ObserverKind::Mse: return "mse";
  }
  return "unknown";
}

std::vector<quant::AffineParams> params_for(const Observer& observer, const quant::Scheme& scheme,
                                            ThreadPool* pool) {
  check_int_scheme(scheme, "params_for");
  std::vector<quant::AffineParams> out;
  for (const Range& r : observer.ranges(pool)) out.push_back(quant::affine_params_from_range(r.lo, r.hi, scheme));
  return out;
}

std::vector<quant::AffineParams> params_for(const Observer& observer, ThreadPool* pool) {
  return params_for(observer, observer.options().target, pool);
}

}  // namespace qf::calib
