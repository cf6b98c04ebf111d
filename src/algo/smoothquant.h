// SmoothQuant (Xiao et al., 2022) for W8A8: activation outliers make
// per-tensor / per-token int8 activations lossy, so part of their range is
// migrated into the weights with a per-input-channel factor
//   s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)
// (max|W_j| over every linear reading the site), folded into the preceding
// norm (algo/channel_scaling.h). As in the paper's Llama recipe, the sites
// after input_layernorm (q/k/v) and post_attention_layernorm (gate/up) are
// smoothed; o and down keep their activations as they are.
#pragma once

#include <vector>

#include "algo/block_runner.h"
#include "model/linear_layers.h"

namespace qf::algo {

struct SmoothingReport {
  model::InputSite site;
  double act_max_ratio_before = 0.0;  // max over channels / median over channels of max|X_j|
  double act_max_ratio_after = 0.0;
};

// Captures max|X_j| on the block's float inputs (runner) and smooths `w`.
std::vector<SmoothingReport> smooth_block(const model::ModelConfig& config, BlockRunner& runner,
                                          model::LayerWeights& w, double alpha);

// The smoothing factors for given activation and weight channel maxima
// (both clamped at 1e-5 as the reference implementation does).
std::vector<double> smoothing_factors(const std::vector<float>& act_max, const std::vector<double>& weight_max,
                                      double alpha);

}  // namespace qf::algo
