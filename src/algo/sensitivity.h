// Layer sensitivity for mixed precision: the KL divergence of the model's
// final next-token distributions when only one linear layer is quantized
// (round to nearest, scheme by scheme), measured on calibration sequences
// against the float model.
#pragma once

#include <vector>

#include "calib/calibration_set.h"
#include "model/linear_layers.h"
#include "quant/scheme.h"

namespace qf::algo {

struct LayerSensitivity {
  model::LinearLayer layer;
  std::vector<double> kl;    // mean KL per token, one per candidate scheme
  std::vector<double> bits;  // storage bits of the layer, one per candidate
};

// For every layer in `layers` and every scheme in `candidates`.
std::vector<LayerSensitivity> measure_sensitivity(const model::Model& model,
                                                  const std::vector<model::LinearLayer>& layers,
                                                  const std::vector<quant::Scheme>& candidates,
                                                  const std::vector<calib::TokenSequence>& sequences, int n_threads);

}  // namespace qf::algo
