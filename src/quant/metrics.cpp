#include "quant/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace qf::quant {

ErrorMetrics measure_error(std::span<const float> reference, std::span<const float> approx) {
  QF_CHECK(reference.size() == approx.size(), "cannot compare {} reference values with {} approximations",
           reference.size(), approx.size());
  double signal = 0.0, noise = 0.0, dot = 0.0, approx_power = 0.0, max_abs = 0.0;
  bool has_nan = false;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double r = reference[i], a = approx[i], d = r - a;
    signal += r * r;
    noise += d * d;
    dot += r * a;
    approx_power += a * a;
    has_nan |= std::isnan(d);
    max_abs = std::max(max_abs, std::fabs(d));
  }
  constexpr double kInf = std::numeric_limits<double>::infinity();
  ErrorMetrics m;
  const double n = static_cast<double>(reference.size());
  m.signal_power = signal;
  m.noise_power = noise;
  m.mse = reference.empty() ? 0.0 : noise / n;
  m.max_abs = has_nan ? std::numeric_limits<double>::quiet_NaN() : max_abs;
  if (noise == 0.0) {
    m.sqnr_db = kInf;
    m.cosine = 1.0;
  } else {
    m.sqnr_db = signal == 0.0 ? -kInf : 10.0 * std::log10(signal / noise);
    if (signal == 0.0 || approx_power == 0.0) {
      m.cosine = 0.0;
    } else {
      m.cosine = std::clamp(dot / (std::sqrt(signal) * std::sqrt(approx_power)), -1.0, 1.0);
    }
  }
  if (has_nan) m.sqnr_db = m.cosine = m.mse = std::numeric_limits<double>::quiet_NaN();
  return m;
}

}  // namespace qf::quant
