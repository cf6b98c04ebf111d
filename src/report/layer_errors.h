// Per linear layer, what quantization did to it: the weight error (SQNR,
// MSE against the fp32 weight, quant/metrics) and its contribution to the
// output divergence: the KLD of the fp32 model with only that layer swapped
// for its quantized version, so layers can be ranked by what they cost.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/linear_layers.h"
#include "model/quantized_checkpoint.h"
#include "quant/metrics.h"

namespace qf::report {

struct LayerError {
  model::LinearLayer layer;
  // The layer's scheme (mixed precision: each layer its own); nullopt when the
  // compared model keeps the layer in float.
  std::optional<quant::Scheme> scheme;
  double bits_per_weight = 32;
  quant::ErrorMetrics metrics{};         // fp32 weight vs dequantized weight
  std::optional<double> kld;             // mean KLD with only this layer quantized
  std::vector<float> grid;               // first_group_levels of the quantized weight
};

// True when every norm weight of `quantized` equals fp32's bit for bit. AWQ
// and SmoothQuant fold per-channel scales into the norms (and scale the
// weights by their inverse): then a layer's weights are compared with
// unscaled fp32 weights, and swapping one layer into the fp32 model is not a
// model anyone runs, so its KLD contribution is not measured.
bool norms_match(const model::Model& fp32, const model::Model& quantized);

// SQNR/MSE and scheme of every linear layer of `fp32` (all_linears order)
// against the quantized model. Throws qf::Error when the two models differ in
// architecture or a quantized layer's shape differs from the fp32 one.
std::vector<LayerError> layer_errors(const model::Model& fp32, const model::QuantizedModel& qm);

// Fills LayerError::kld for the quantized layers: `dequantized` is the
// compared model with float weights (model::dequantized_model), `base_logits`
// the fp32 model's logits on `tokens`. One forward pass per quantized layer.
void add_kld_contributions(const model::Model& fp32, const model::Model& dequantized,
                           std::span<const int32_t> tokens, const Tensor& base_logits, std::vector<LayerError>& layers,
                           int n_threads);

}  // namespace qf::report
