// Quantization-aware training: a float model and calibration tokens in, a
// QuantizedModel (the same thing `quantize` produces) out.
//
// Every block linear layer gets a latent float weight (initialised from the
// model) and learnable per-group scales and zero points (LSQ / LSQ+,
// train/fake_quant.h, initialised by RTN min-max). Each step runs the
// fake-quantized model (train/network.h) on `batch` random windows of
// `seqlen` tokens, takes KL(teacher || student) over every position against
// the fp32 model's logits, and updates all of them with Adam under a cosine
// learning-rate decay. With `blockwise` (EfficientQAT's Block-AP), blocks are
// trained one after another first, each on the MSE between its quantized
// output and the float block's output over a fixed pool of windows, its input
// taken from the already-trained blocks before it; `e2e_steps` end-to-end KL
// steps may follow. Finally the latent weights are rounded with the learned
// parameters into codes: the exported model dequantizes to exactly the
// weights the last step used.
//
// Deterministic for a seed: windows come from std::mt19937_64, every
// reduction has a fixed order, and threads only split disjoint outputs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/quantized_checkpoint.h"
#include "quant/scheme.h"

namespace qf::train {

struct QatProgress {
  std::string phase;  // "qat", or "block N" in the blockwise phase
  int64_t step = 0;   // 1-based within the phase
  int64_t steps = 0;
  double loss = 0.0;
};

struct QatOptions {
  quant::Scheme weights;
  bool int8_activations = false;  // also simulate dynamic per-token int8 at every linear input
  int64_t steps = 300;            // end-to-end steps (blockwise: steps per block)
  int64_t batch = 8;              // windows per step
  int64_t seqlen = 128;           // tokens per window
  double lr = 1e-3;               // latent weights
  double scale_lr = -1.0;         // scales and zero points; < 0: lr
  bool blockwise = false;
  int64_t e2e_steps = 0;      // blockwise: end-to-end KL steps after the block phase
  int64_t block_pool = 64;    // blockwise: windows in the fixed pool (fewer when the text is short)
  uint64_t seed = 0;
  int n_threads = 1;
  // Checked before every step; when it becomes true training stops with a
  // qf::Error ("interrupted ...") and nothing is returned.
  const std::atomic<bool>* stop = nullptr;
  std::function<void(const QatProgress&)> progress;  // after every step; may be empty
};

struct QatReport {
  double initial_loss = 0.0;  // first end-to-end step (KL, before any update)
  double final_loss = 0.0;    // last end-to-end step
  int64_t steps = 0;          // all steps run (block and end-to-end)
  double seconds = 0.0;
  double seconds_per_step = 0.0;  // end-to-end steps (block steps when there are none)
  uint64_t train_bytes = 0;   // tape, parameters, gradients and optimizer state
};

// Throws qf::Error for a scheme QAT cannot train (codebook and float
// formats), a model it cannot run, too few tokens for one window, bad
// options, a diverging run (a non-finite loss: the message names the step and
// the first layer or block with non-finite values) or an interruption.
model::QuantizedModel train_qat(const model::Model& model, std::span<const int32_t> tokens, const QatOptions& options,
                                QatReport* report = nullptr);

}  // namespace qf::train
