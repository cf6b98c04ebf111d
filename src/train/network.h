// A differentiable forward pass of a model::Model (Llama family and GPT-2)
// over B sequences of T tokens, positions 0..T-1 each, with a hand-written
// backward. The weights of the linear layers are supplied from outside as
// [out, in] F32 matrices (the trainer's fake-quantized weights, train/qat.h);
// norms, biases, embeddings and the head are the model's own and stay
// frozen. It computes what runtime::Runtime computes (the same fp32 loops;
// tests hold its logits to the runtime's within 1e-4), keeping every block's
// activations (a tape) for backward.
//
//   Network net(model, {.n_threads = 2});
//   net.set_weight(i, wq);              // for every i < net.linears().size()
//   net.forward(tokens, B, T, logits);  // logits [B*T, vocab]
//   net.backward(dlogits, dw);          // dw[i] = dL/dW_i, [out, in]
//
// Simulated dynamic int8 activations (W8A8, --acts int8) pass gradients
// straight through the rounding.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "model/linear_layers.h"
#include "model/model.h"
#include "train/ops.h"

namespace qf::train {

struct NetworkOptions {
  int n_threads = 1;
  bool int8_activations = false;  // dynamic per-token symmetric int8 at every linear input
};

class Network {
 public:
  // Throws qf::Error for models the trainer cannot run (block parts without
  // a backward pass here: q/k norms, sandwich norms, (1 + w) norms, GeGLU,
  // soft-capping; a quantized or packed model, non-F32 weights).
  Network(const model::Model& model, NetworkOptions options);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // model::all_linears order.
  const std::vector<model::LinearLayer>& linears() const { return linears_; }
  // The weight a linear layer uses from now on ([out, in], must outlive its use).
  void set_weight(size_t linear, const float* w);
  const model::Model& model() const { return model_; }
  const ParallelFor& parallel_for() const { return pf_; }

  // Embedding (and GPT-2 positions) of B x T tokens: x [B*T, hidden].
  void embed(const int32_t* tokens, int64_t B, int64_t T, float* x) const;
  // Block `layer` on x [B*T, hidden] into y (may not alias x), taping it.
  void block_forward(int64_t layer, const float* x, int64_t B, int64_t T, float* y);
  // From dy (the gradient of block `layer`'s output) to dx (may be null) and
  // the block's weight gradients: dw[i] for linears() index i of this block
  // (overwritten; other entries untouched). Needs the tape of the last
  // block_forward of this layer.
  void block_backward(int64_t layer, const float* dy, float* dx, const std::vector<float*>& dw);
  // Final norm and head on x [rows, hidden] into logits [rows, vocab], taped.
  void head_forward(const float* x, int64_t rows, float* logits);
  void head_backward(const float* dlogits, float* dx);

  // The whole model (embed, blocks, head): logits [B*T, vocab].
  void forward(const int32_t* tokens, int64_t B, int64_t T, float* logits);
  void backward(const float* dlogits, const std::vector<float*>& dw);
  // Output of block `layer` in the last forward() ([B*T, hidden]): for messages
  // naming where values stopped being finite.
  const float* block_output(int64_t layer) const;

  // Bytes held by the tape and scratch buffers.
  uint64_t tape_bytes() const;

 private:
  struct Tape;
  void block_llama(int64_t layer, Tape& t, const float* x, float* y);
  void block_gpt2(int64_t layer, Tape& t, const float* x, float* y);
  void back_llama(int64_t layer, Tape& t, const float* dy, float* dx, const std::vector<float*>& dw);
  void back_gpt2(int64_t layer, Tape& t, const float* dy, float* dx, const std::vector<float*>& dw);
  // The input a site's linear layers multiply: x itself, or its int8 fake-quantized copy in `buf`.
  const float* site_input(const float* x, int64_t rows, int64_t cols, std::vector<float>& buf) const;
  void prepare_positions(int64_t T);
  const float* weight(int64_t layer, model::LinearKind kind) const;
  size_t linear_index(int64_t layer, model::LinearKind kind) const;

  const model::Model& model_;
  NetworkOptions options_;
  std::vector<model::LinearLayer> linears_;
  std::vector<const float*> weights_;
  std::unique_ptr<ThreadPool> pool_;
  ParallelFor pf_;
  std::vector<std::unique_ptr<Tape>> tapes_;
  std::vector<float> cos_, sin_;
  int64_t pos_T_ = -1;
  // forward()/backward() state
  int64_t B_ = 0, T_ = 0;
  std::vector<std::vector<float>> xs_;  // block inputs/outputs: xs_[l] is block l's input
  std::vector<float> head_x_, head_xn_, dxa_, dxb_;
};

}  // namespace qf::train
