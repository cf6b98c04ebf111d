// Runs calibration sequences through a model one transformer block at a time.
// It holds the hidden states of every sequence at the input of the current
// block (sequences x tokens x hidden floats: one block's activations), so a
// pipeline can quantize block i, run its quantized version to produce the
// inputs of block i + 1 (GPTQ's sequential mode), and never hold more than one
// block's working copy of the weights.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "calib/calibration_set.h"
#include "core/tensor.h"
#include "model/model.h"
#include "runtime/runtime.h"

namespace qf::algo {

// Called with the input of the linear layers at `site` of one sequence:
// [rows, cols] row-major.
using SiteHook = std::function<void(model::InputSite site, const float* x, int64_t rows, int64_t cols)>;

class BlockRunner {
 public:
  // Embeds every sequence (all of the same length). `model` must outlive it.
  BlockRunner(const model::Model& model, const std::vector<calib::TokenSequence>& sequences, int n_threads);

  int64_t block() const { return block_; }  // the block whose input hidden() holds
  int64_t sequences() const { return static_cast<int64_t>(hidden_.size()); }
  int64_t tokens() const;  // summed over sequences
  const std::vector<Tensor>& hidden() const { return hidden_; }

  // Runs the current block with `weights` over every sequence, calling `hook`
  // at each site. With `stop_after`, only the part of the block up to that
  // site runs (the hidden states are not touched). With `outputs`, the block
  // outputs are stored there (one [T, hidden] tensor per sequence). With
  // max_sequences > 0, only the first that many sequences run (searches that
  // need a subset).
  void run(const model::LayerWeights& weights, const SiteHook& hook,
           std::optional<model::InputSite> stop_after = std::nullopt, std::vector<Tensor>* outputs = nullptr,
           int64_t max_sequences = 0);
  // Runs the current block with `weights` and makes its outputs the hidden
  // states of the next block.
  void advance(const model::LayerWeights& weights);

  // Logits [T, vocab] of every sequence from the current hidden states (after
  // the last block: the model's output).
  std::vector<Tensor> logits();

 private:
  runtime::Runtime rt_;
  int64_t block_ = 0;
  std::vector<Tensor> hidden_;
};

// sum over tokens of x x^T for one site's inputs ([cols, cols], double), fed
// batch by batch; float products per batch (cblas_ssyrk), double sums across
// batches.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t cols);
  void add(const float* x, int64_t rows);
  // The full symmetric matrix, row-major.
  const std::vector<double>& matrix();
  int64_t cols() const { return cols_; }
  int64_t tokens() const { return tokens_; }

 private:
  int64_t cols_;
  int64_t tokens_ = 0;
  std::vector<double> sum_;
  std::vector<float> batch_;
  bool symmetric_ = false;
};

// Per-channel mean of one site's inputs (bias correction) and mean |x| and
// max |x| (AWQ, SmoothQuant).
struct ChannelStats {
  explicit ChannelStats(int64_t cols = 0);
  void add(const float* x, int64_t rows);
  std::vector<double> mean() const;
  std::vector<double> abs_mean() const;
  int64_t cols = 0;
  int64_t tokens = 0;
  std::vector<double> sum, abs_sum;
  std::vector<float> abs_max;
};

}  // namespace qf::algo
