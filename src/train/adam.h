// Adam (Kingma & Ba 2015) with bias correction, on flat float parameters.
// Element-wise and single-threaded per call, so results depend only on the
// inputs (deterministic).
#pragma once

#include <cstdint>
#include <vector>

namespace qf::train {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

struct AdamState {
  std::vector<float> m, v;
};

// One update of n parameters with gradient g at step `step` (1-based) and
// learning rate lr: p -= lr * mhat / (sqrt(vhat) + eps).
void adam_step(float* p, const float* g, int64_t n, AdamState& state, double lr, int64_t step,
               const AdamOptions& options = {});

}  // namespace qf::train
