#include "calib/clipping.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace qf::calib {
namespace {

// The histogram's clip [lo, hi] (its domain) as a Range of raw values.
Range to_range(const Histogram& h, double lo, double hi) {
  if (h.domain() == Histogram::Domain::Magnitude) {
    const auto a = static_cast<float>(hi);
    return {-a, a};
  }
  return {static_cast<float>(lo), static_cast<float>(hi)};
}

double xlogx(double x) { return x > 0.0 ? x * std::log(x) : 0.0; }

// KL(P || Q) of the windows [0, i) of a magnitude histogram in O(levels)
// each, TensorRT's way: P is the window with the mass beyond it folded into
// its last bin; Q merges the window's own bins (without the folded mass) into
// `levels` groups and spreads each group's mass evenly over the bins where P
// is non-zero. P and Q are normalised separately, so Q lacks the clipped
// mass. A window where P has mass in a group that is empty in the window's
// own bins has KL = infinity (TensorRT skips those thresholds too).
class KlSearch {
 public:
  KlSearch(std::span<const uint64_t> counts, int levels) : levels_(levels) {
    const size_t n = counts.size();
    counts_.resize(n);
    mass_.assign(n + 1, 0.0);
    nonzero_.assign(n + 1, 0);
    plogp_.assign(n + 1, 0.0);
    log_int_.assign(n + 1, 0.0);
    for (size_t i = 1; i <= n; ++i) log_int_[i] = std::log(static_cast<double>(i));
    for (size_t i = 0; i < n; ++i) {
      const double c = static_cast<double>(counts[i]);
      counts_[i] = c;
      mass_[i + 1] = mass_[i] + c;
      nonzero_[i + 1] = nonzero_[i] + (c > 0.0 ? 1 : 0);
      plogp_[i + 1] = plogp_[i] + xlogx(c);
    }
    total_ = mass_[n];
  }

  double kl(int64_t i) const {
    const double inside = mass_[static_cast<size_t>(i)];  // sum of Q before normalisation
    const double outliers = total_ - inside;
    if (inside <= 0.0) return std::numeric_limits<double>::infinity();
    // sum_b P_b log P_b - sum_b P_b log Q_b, unnormalised.
    double sum = 0.0;
    for (int g = 0; g < levels_; ++g) {
      const auto b0 = static_cast<size_t>(i * g / levels_);
      const auto b1 = static_cast<size_t>(i * (g + 1) / levels_);
      if (b1 == b0) continue;
      const double own = mass_[b1] - mass_[b0];
      double p_mass = own;
      int64_t nonzero = nonzero_[b1] - nonzero_[b0];
      double plogp = plogp_[b1] - plogp_[b0];
      if (g == levels_ - 1 && outliers > 0.0) {  // fold the clipped mass into the last bin
        const double c = counts_[b1 - 1];
        p_mass += outliers;
        nonzero += c > 0.0 ? 0 : 1;
        plogp += xlogx(c + outliers) - xlogx(c);
      }
      if (p_mass == 0.0) continue;
      if (own == 0.0) return std::numeric_limits<double>::infinity();
      sum += plogp - p_mass * (std::log(own) - log_int_[static_cast<size_t>(nonzero)]);
    }
    // KL = sum_b p_b log(p_b / q_b) with p = P / total, q = Q / inside.
    return std::max(0.0, sum / total_ + std::log(inside / total_));
  }

 private:
  int levels_;
  std::vector<double> counts_, mass_, plogp_, log_int_;
  std::vector<int64_t> nonzero_;
  double total_ = 0.0;
};

// Mean of (x - Q(x))^2 for x uniform on [a, b] (Q: affine fake quantization).
// Not built on quant::affine_quantize: the integral needs the step edges in double, not per-point float codes.
double interval_error(double a, double b, const quant::AffineParams& p) {
  const double s = p.scale;
  const double zp = p.zero_point;
  const double qmin = p.qmin;
  const double qmax = p.qmax;
  auto code = [&](double x) { return std::clamp(std::nearbyint(x / s) + zp, qmin, qmax); };
  if (!(b > a)) {
    const double d = a - (code(a) - zp) * s;
    return d * d;
  }
  double total = 0.0;
  double u = a;
  for (double q = code(a);; q += 1.0) {
    const double upper = q >= qmax ? std::numeric_limits<double>::infinity() : (q - zp + 0.5) * s;
    const double w = std::min(b, upper);
    if (w > u) {
      const double v = (q - zp) * s;
      const double du = u - v;
      const double dw = w - v;
      total += (w - u) * (dw * dw + dw * du + du * du) / 3.0;  // integral of (x - v)^2 over [u, w]
      u = w;
    }
    if (w >= b) break;
  }
  return total / (b - a);
}

}  // namespace

Range percentile_clip(const Histogram& h, double percentile) {
  QF_CHECK(percentile > 0.0 && percentile <= 100.0, "percentile {} is not in (0, 100]", percentile);
  const double p = percentile / 100.0;
  if (h.domain() == Histogram::Domain::Magnitude) return to_range(h, 0.0, h.quantile(p));
  return to_range(h, h.quantile(1.0 - p), h.quantile(p));
}

int entropy_levels(const quant::Scheme& scheme, bool one_sided) {
  QF_CHECK(scheme.bits >= quant::kMinIntBits && scheme.bits <= quant::kMaxRangeIntBits,
           "entropy calibration: integer width {} is out of range [{}, {}]", scheme.bits, quant::kMinIntBits,
           quant::kMaxRangeIntBits);
  return (!scheme.symmetric && one_sided) ? 1 << scheme.bits : 1 << (scheme.bits - 1);
}

Range entropy_clip(const Histogram& h, int levels) {
  QF_CHECK(levels >= 2, "entropy calibration needs at least 2 levels, got {}", levels);
  QF_CHECK(h.domain() == Histogram::Domain::Magnitude, "entropy calibration needs a histogram of |x|");
  QF_CHECK(h.total() > 0, "entropy calibration of an empty histogram");
  if (h.width() == 0.0) return {0.0f, 0.0f};
  const int64_t n = h.bins();
  int64_t best = n;
  if (n >= levels) {
    const KlSearch search(h.counts(), levels);
    double best_kl = search.kl(n);
    for (int64_t i = levels; i < n; ++i) {  // the first minimum wins
      const double kl = search.kl(i);
      if (kl < best_kl) {
        best_kl = kl;
        best = i;
      }
    }
  }
  // Bin 0 starts at 0 (the histogram of |x| includes 0), so the window [0, i)
  // ends at edge(i).
  return to_range(h, 0.0, std::min(h.edge(best), h.max()));
}

double histogram_mse(const Histogram& h, const quant::AffineParams& params) {
  QF_CHECK(h.total() > 0, "quantization error of an empty histogram");
  if (h.width() == 0.0) return interval_error(0.0, 0.0, params);
  const auto counts = h.counts();
  double sum = 0.0;
  for (int i = 0; i < h.bins(); ++i) {
    const uint64_t c = counts[static_cast<size_t>(i)];
    if (c == 0) continue;
    const double a = std::max(h.edge(i), h.min());
    const double b = std::max(a, std::min(h.edge(i + 1), h.max()));
    sum += static_cast<double>(c) * interval_error(a, b, params);
  }
  return sum / static_cast<double>(h.total());
}

namespace {

// Minimises err(r) over r = k / grid (k = grid..1), then over 20 finer steps
// either side of the best; only strict improvements on `best_err` count, and
// larger ratios are tried first, so ties keep the wider range. Returns the
// best ratio, or `current` if nothing beat best_err.
template <typename Err>
double search_ratio(const Err& err, int grid, double current, double& best_err) {
  double best = current;
  auto consider = [&](double r) {
    if (!(r > 0.0 && r <= 1.0)) return;
    const double e = err(r);
    if (e < best_err) {
      best_err = e;
      best = r;
    }
  };
  for (int k = grid; k >= 1; --k) consider(static_cast<double>(k) / grid);
  const double centre = best;
  const double step = 1.0 / grid / 20.0;
  for (int j = 19; j >= -19; --j) {
    if (j != 0) consider(centre + j * step);
  }
  return best;
}

}  // namespace

Range mse_clip(const Histogram& h, const quant::Scheme& scheme, int grid) {
  QF_CHECK(grid >= 1, "the MSE search needs a grid of at least 1 ratio, got {}", grid);
  QF_CHECK(h.total() > 0, "MSE calibration of an empty histogram");
  auto error = [&](double lo, double hi) {
    return histogram_mse(h, quant::affine_params_from_range(static_cast<float>(lo), static_cast<float>(hi), scheme));
  };
  double best_err = std::numeric_limits<double>::infinity();

  if (h.domain() == Histogram::Domain::Magnitude) {
    const double amax = h.max();
    if (amax == 0.0) return {0.0f, 0.0f};
    const double r = search_ratio([&](double x) { return error(-amax * x, amax * x); }, grid, 1.0, best_err);
    return to_range(h, 0.0, amax * r);
  }

  const double lo = h.min();
  const double hi = h.max();
  if (lo == 0.0 && hi == 0.0) return {0.0f, 0.0f};
  // Both ends together, then each end alone with the other fixed.
  const double r = search_ratio([&](double x) { return error(lo * x, hi * x); }, grid, 1.0, best_err);
  double r_lo = r;
  double r_hi = r;
  r_hi = search_ratio([&](double x) { return error(lo * r_lo, hi * x); }, grid, r_hi, best_err);
  r_lo = search_ratio([&](double x) { return error(lo * x, hi * r_hi); }, grid, r_lo, best_err);
  return to_range(h, lo * r_lo, hi * r_hi);
}

}  // namespace qf::calib
