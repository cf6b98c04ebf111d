// AWQ (Lin et al., 2023), activation-aware weight quantization, for one block:
//  1. per input site, a per-channel scale s = mean|x|^alpha (normalised by
//     sqrt(max s * min s)) searched over an alpha grid, keeping the alpha whose
//     quantized block output is closest (MSE) to the float block's;
//  2. the scale folded into the producer of the site (algo/channel_scaling.h)
//     so the float model is unchanged before rounding;
//  3. per output row and group, a clipping ratio of the weight range searched
//     on sampled inputs, minimising the group's output error (q/k are not
//     clipped: their errors pass through softmax, as the paper's code notes).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "algo/block_runner.h"
#include "model/linear_layers.h"
#include "quant/quantize.h"

namespace qf::algo {

struct AwqOptions {
  int grid = 20;                  // alpha = i / grid, i = 0 .. grid - 1
  bool clip = true;               // weight clipping search
  int clip_grid = 20;             // shrink ratios 1 - i / clip_grid ...
  double max_shrink = 0.5;        // ... down to 1 - max_shrink
  int64_t search_tokens = 4096;   // tokens (whole sequences) for the alpha search
  int64_t clip_tokens = 512;      // sampled tokens for the clipping search
};

// What the search decided, for the report.
struct AwqSiteChoice {
  model::InputSite site;
  double alpha = 0.0;
  double error = 0.0;     // block output MSE at that alpha
  double error_at_0 = 0.0;  // and without scaling (alpha = 0)
};

struct AwqBlockResult {
  std::vector<AwqSiteChoice> sites;
  // Clipped quantization parameters for layers the clip search covered, by
  // module name (others use the scheme's own parameters).
  std::map<std::string, quant::ParamGrid> params;
};

// `linears` are the block's layers to quantize (skipped layers left out), with
// `scheme_of` their schemes. `runner` holds the block's input hidden states;
// `w` (the block's weights) gets the scales folded in.
AwqBlockResult awq_block(const model::ModelConfig& config, BlockRunner& runner, model::LayerWeights& w,
                         const std::vector<model::LinearLayer>& linears,
                         const std::function<quant::Scheme(const model::LinearLayer&)>& scheme_of,
                         const AwqOptions& options);

}  // namespace qf::algo
