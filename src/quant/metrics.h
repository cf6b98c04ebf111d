// Error of an approximation (dequantized weights) against a reference.
#pragma once

#include <span>

namespace qf::quant {

struct ErrorMetrics {
  double mse = 0.0;       // mean of (reference - approx)^2
  double sqnr_db = 0.0;   // 10 log10(sum reference^2 / sum (reference - approx)^2)
  double max_abs = 0.0;   // max |reference - approx|
  double cosine = 1.0;    // <reference, approx> / (|reference| |approx|)
  double signal_power = 0.0;  // sum reference^2 (for aggregating SQNR over tensors)
  double noise_power = 0.0;   // sum (reference - approx)^2
};

// Accumulates in double. Conventions for the degenerate cases:
//   no error (including empty or all-zero inputs): sqnr_db = +inf, cosine = 1
//   error on an all-zero reference: sqnr_db = -inf
//   exactly one of the two vectors all zero: cosine = 0
// NaN in either input propagates to the results. Sizes must match (qf::Error).
ErrorMetrics measure_error(std::span<const float> reference, std::span<const float> approx);

}  // namespace qf::quant
