#include "train/adam.h"

#include <cmath>

namespace qf::train {

void adam_step(float* p, const float* g, int64_t n, AdamState& s, double lr, int64_t step, const AdamOptions& o) {
  if (s.m.size() != static_cast<size_t>(n)) {
    s.m.assign(static_cast<size_t>(n), 0.0f);
    s.v.assign(static_cast<size_t>(n), 0.0f);
  }
  const double c1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
  const double c2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
  const float step_size = static_cast<float>(lr / c1);
  const float inv_c2 = static_cast<float>(1.0 / c2), eps = static_cast<float>(o.eps);
  float* m = s.m.data();
  float* v = s.v.data();
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= step_size * m[i] / (std::sqrt(v[i] * inv_c2) + eps);
  }
}

}  // namespace qf::train
