// Distribution statistics of a weight or activation tensor: what a user looks
// at first to judge how hard it is to quantize (heavy tails, outliers).
#pragma once

#include <cstdint>
#include <span>

namespace qf::analysis {

struct TensorStats {
  int64_t count = 0;
  double min = 0, max = 0, mean = 0, std = 0;
  // Pearson kurtosis E[(x-mean)^4]/std^4: 3 for a Gaussian, larger for heavy tails.
  double kurtosis = 0;
  // Values more than `outlier_sigmas` standard deviations from the mean.
  int64_t outliers = 0;
  int64_t non_finite = 0;  // NaN or Inf values (excluded from the moments)
};

TensorStats compute_stats(std::span<const float> values, double outlier_sigmas = 6.0);

}  // namespace qf::analysis
