// Importance weights for weighted rounding (llama.cpp's "imatrix"): the mean
// square E[x_j^2] of each input column j of every linear layer, measured on
// calibration sequences run through the float model block by block. A
// weight's rounding error e_ij costs about E[x_j^2] e_ij^2 in the layer's
// output, which is what the weighted scale searches minimize.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "calib/calibration_set.h"
#include "model/model.h"

namespace qf::algo {

// By HF weight name (LinearLayer::name + ".weight"), in_features values each.
std::map<std::string, std::vector<float>> input_mean_squares(const model::Model& model,
                                                             const std::vector<calib::TokenSequence>& calibration,
                                                             int n_threads);

}  // namespace qf::algo
