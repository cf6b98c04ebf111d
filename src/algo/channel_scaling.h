// Per-input-channel scaling folded into the preceding operation, the move
// both SmoothQuant and AWQ make: y = W x = (W diag(s)) (diag(s)^-1 x). The
// linears reading `site` get their input columns multiplied by s; whatever
// produces the site's input is divided by s, so the float block computes the
// same function while the difficulty of quantization moves between weights
// and activations.
#pragma once

#include <span>

#include "core/tensor.h"
#include "model/model.h"

namespace qf::algo {

// Whether the producer of `site` can absorb a per-channel division:
//   AttnIn, FfnIn   the RMSNorm / LayerNorm weight (and LayerNorm bias): always;
//   AttnOut         v_proj's rows (Llama without grouped-query attention, where
//                   o's input channels map one to one onto v's outputs), GPT-2's
//                   v columns of c_attn;
//   FfnHidden       Llama up_proj's rows (the hidden is silu(gate) * up, linear
//                   in up); GPT-2's GELU is not linear, so no.
bool can_scale_site(const model::ModelConfig& config, model::InputSite site);

// Applies s (> 0, one per input channel of the site) to the block's weights.
// Tensors it changes become owning copies. Throws qf::Error when
// !can_scale_site or on a size mismatch.
void apply_channel_scales(const model::ModelConfig& config, model::LayerWeights& w, model::InputSite site,
                          std::span<const double> s);

// A new F32 [out, in] matrix with input column j multiplied by s[j] (divided
// with `divide`): W diag(s), the consumer side of a fold, for searches that
// try scales without folding them.
Tensor scale_input_columns(const Tensor& out_in, std::span<const double> s, bool divide = false);

}  // namespace qf::algo
