#include "analysis/tensor_stats.h"

#include <cmath>
#include <limits>

namespace qf::analysis {

TensorStats compute_stats(std::span<const float> values, double outlier_sigmas) {
  TensorStats s;
  double sum = 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (float v : values) {
    if (!std::isfinite(v)) {
      ++s.non_finite;
      continue;
    }
    ++s.count;
    sum += v;
    lo = std::min<double>(lo, v);
    hi = std::max<double>(hi, v);
  }
  if (s.count == 0) return s;
  s.min = lo;
  s.max = hi;
  s.mean = sum / static_cast<double>(s.count);
  // Central moments in a second pass: one-pass formulas lose precision when
  // the mean is large compared with the spread.
  double m2 = 0, m4 = 0;
  for (float v : values) {
    if (!std::isfinite(v)) continue;
    const double d = v - s.mean;
    const double d2 = d * d;
    m2 += d2;
    m4 += d2 * d2;
  }
  m2 /= static_cast<double>(s.count);
  m4 /= static_cast<double>(s.count);
  s.std = std::sqrt(m2);
  s.kurtosis = m2 > 0 ? m4 / (m2 * m2) : 0.0;
  if (s.std > 0) {
    const double limit = outlier_sigmas * s.std;
    for (float v : values)
      if (std::isfinite(v) && std::fabs(v - s.mean) > limit) ++s.outliers;
  }
  return s;
}

}  // namespace qf::analysis
