// Learned rotations (SpinQuant's idea with a layer-local objective, as in
// DartQuant / OSTQuant): starting from a randomly rotated model
// (algo/rotation.h), search the orthogonal group for rotations under which
// the quantized linear layers reproduce their float outputs better.
//
// What is learned, each initialised to the identity on top of the random
// Hadamard rotation already fused into the model:
//   R    one [hidden, hidden] matrix on the residual stream: every reader of
//        it (q/k/v, gate/up) sees x R and holds W R, every writer (o_proj,
//        down_proj) holds R^T W. Offline, so free at inference.
//   U_l  per layer on the o_proj input and V_l on the down_proj input, where
//        the model has an online transform there (--rotate hadamard); the
//        transform T becomes the dense T U_l. Only up to kMaxLearnedOnline
//        wide: a dense online matrix costs n^2 per token.
//
// Objective: the float model computes the same function for any R, U, V, so
// all they change is quantization noise, and the objective models that noise
// directly (rounding error is uniform, variance step^2 / 12). For every
// linear layer with captured float inputs X (calibration tokens), weight W,
// input rotation P and output rotation R_out (R for o_proj / down_proj, I
// otherwise), A = X P and B = R_out^T W P:
//   activations  sum_t (max_j |A_tj| / qmax)^2 ||W||_F^2 / 12
//                (dynamic per-token int activations, when quantized)
//   weights      sum_i sum_g step_ig(B)^2 h_g / 12, h_g = sum over the
//                group's columns j of sum_t A_tj^2 (the input energy that
//                group's error reaches the output with), step_ig = max|B| /
//                qmax or (max - min) / (2^b - 1) over group g of row i
// each layer's sum divided by ||X W^T||^2, so every layer counts by its
// noise-to-signal ratio. This rewards what a rotation is for (no outlier
// token channel sets a large step, no weight group has a wide range); a
// straight-through gradient of the rounding itself (SpinQuant's end-to-end
// STE) ignores how the step depends on the maxima and, on a layer-local loss,
// only raised the error here. The maxima pass their subgradient to where they
// are attained, and each matrix moves along the orthogonal group by a Cayley
// retraction (Cayley SGD, Li et al. 2020; SpinQuant's optimizer), so it stays
// orthogonal. The matrices with the lowest objective seen are kept.
//
// The inputs X are captured once from the rotated float model (one block at a
// time, float all the way, so no layer's quantization is fixed yet); the
// layer's GPTQ or RTN quantization runs afterwards on the refined model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "algo/rotation.h"
#include "calib/calibration_set.h"
#include "model/model.h"
#include "quant/scheme.h"

namespace qf::algo {

inline constexpr int64_t kMaxLearnedOnline = 1024;

struct RotationLearningOptions {
  int64_t steps = 100;
  double lr = 0.05;  // radians of rotation per step (Frobenius norm of the skew step), cosine-decayed to 0
  quant::Scheme weights;       // the weight quantizer of the objective (round to nearest)
  bool act_quant = false;      // dynamic per-token activations in the objective
  int act_bits = 8;
  int64_t max_tokens = 2048;   // calibration rows kept per site
  bool residual = true;        // learn R
  bool online = true;          // learn U_l, V_l where there is an online transform
  int n_threads = 0;
  std::function<void(const std::string&)> log;  // progress lines; may be empty
};

struct RotationLearningReport {
  double initial_loss = 0.0;  // the objective at the random rotation
  double final_loss = 0.0;    // at the matrices kept
  int64_t steps = 0;
  int64_t best_step = 0;      // 0: no step improved on the random rotation
  double seconds = 0.0;
};

// Throws qf::Error for options the objective cannot take (a weight scheme
// it does not model, no steps, a step length that is not positive).
void validate(const RotationLearningOptions& options);

// Learns the refinement of an already rotated float Llama-family `model`
// (rotate_model) on `calibration` and returns it; refine_rotation(model, r)
// applies it. Throws qf::Error for a model that is not rotated, an empty
// calibration set or bad options.
RotationRefinement learn_rotation(const model::Model& model, const std::vector<calib::TokenSequence>& calibration,
                                  const RotationLearningOptions& options, RotationLearningReport* report = nullptr);

// The objective above at the refinement `at` (null or empty entries: the
// identity, i.e. `model` as it is) and, with `gradient`, its (sub)gradient
// with respect to every matrix that is learned, in the same layout (empty
// where nothing is learned). The matrices need not be orthogonal: tests
// check the gradient against finite differences.
double rotation_objective(const model::Model& model, const std::vector<calib::TokenSequence>& calibration,
                          const RotationLearningOptions& options, const RotationRefinement* at = nullptr,
                          RotationRefinement* gradient = nullptr);

}  // namespace qf::algo
