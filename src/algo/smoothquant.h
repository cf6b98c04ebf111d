// SmoothQuant (Xiao et al., 2022) for W8A8: activation outliers make
// per-tensor / per-token int8 activations lossy, so part of their range is
// migrated into the weights with a per-input-channel factor
//   s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)
// (max|W_j| over every linear reading the site), folded into the preceding
// norm (algo/channel_scaling.h), or into up_proj for down_proj's input (and
// v_proj for o_proj's, without grouped-query attention).
//
// Smoothing is not free: it widens the weights' range. So every site where a
// fold is possible tries the candidate alphas and keeps the one (alpha 0 = no
// smoothing) whose simulated W8A8 output, Q_a(X / s) Q_w(W diag(s))^T, is
// closest to the float X W^T on the calibration tokens. With one candidate
// alpha (the paper's fixed 0.5) that is a guard against smoothing a site it
// would hurt; with a grid it is the per-layer alpha search of later
// SmoothQuant tooling.
#pragma once

#include <vector>

#include "algo/block_runner.h"
#include "model/linear_layers.h"
#include "quant/scheme.h"

namespace qf::algo {

struct SmoothingReport {
  model::InputSite site;
  bool smoothed = false;              // false: no candidate beat leaving the site as it is
  double alpha = 0.0;                 // the candidate chosen when smoothed
  double error = 0.0, error_unsmoothed = 0.0;  // simulated W8A8 output MSE
  double act_max_ratio_before = 0.0;  // max over channels / median over channels of max|X_j|
  double act_max_ratio_after = 0.0;
};

struct SmoothingOptions {
  std::vector<double> alphas = {0.5};  // candidates besides 0
  quant::Scheme weights;               // weight scheme the simulation uses
  model::ActivationQuant acts;         // activation quantizer it simulates (static: min-max scale)
  int64_t sample_tokens = 2048;
};

// Captures max|X_j| and a token sample on the block's inputs (runner) and smooths `w`.
std::vector<SmoothingReport> smooth_block(const model::ModelConfig& config, BlockRunner& runner,
                                          model::LayerWeights& w, const SmoothingOptions& options);

// The smoothing factors for given activation and weight channel maxima
// (both clamped at 1e-5 as the reference implementation does).
std::vector<double> smoothing_factors(const std::vector<float>& act_max, const std::vector<double>& weight_max,
                                      double alpha);

}  // namespace qf::algo
