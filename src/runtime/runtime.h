// The forward pass of a model::Model with a KV cache: float layers on
// OpenBLAS, packed (quantized) layers on the integer kernels of src/kernels.
//
//   model::Model m = model::load_model("stories260K.bin");
//   runtime::Runtime rt(m, {.n_threads = 4});
//   Tensor logits = rt.forward(prompt);             // [T, vocab], positions 0..T-1
//   Tensor next = rt.forward(std::span(&tok, 1), runtime::Logits::Last);  // [1, vocab], position T
//
// Several sequences (a server's slots) each keep their own KVCache
// (new_cache()): forward(cache, tokens) prefills one, forward_batch() runs one
// decode step of K of them together, their K rows going through every linear
// layer as one [K, hidden] block (one matmul per layer instead of K).
//
// Every call appends its tokens' keys and values to the cache, so positions
// continue from runtime.n_past(). A batch of T tokens runs as [T, hidden]
// activation blocks: every linear layer is one cblas_sgemm (nn.Linear weights
// [out, in] as X * W^T, GPT-2 Conv1D weights [in, out] as X * W, no transposed
// copies); attention runs per (head, query) on the ThreadPool against the cache.
// Packed layers (quantized weights in the integer kernels' layout) run on
// src/kernels instead, their output rows split over the ThreadPool.
// A layer's ActivationQuant entries make the inputs of its linear layers pass
// through simulated integer quantization first (runtime/activation_quant.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/activations.h"
#include "kernels/cpu_target.h"
#include "kernels/matmul.h"
#include "model/arch/block_spec.h"
#include "model/model.h"

namespace qf::runtime {

struct RuntimeOptions {
  // Threads for OpenBLAS and for our ThreadPool (attention heads, per-row
  // work); <= 0 means std::thread::hardware_concurrency(). OpenBLAS's count is
  // process-wide: each forward() sets it to this value.
  int n_threads = 0;
  // KV cache length in positions; <= 0 means the model's max_positions, capped
  // at kDefaultContextCap to keep the cache's memory bounded. Llama-family
  // models may be given more than max_positions; GPT-2 cannot (learned positions).
  int64_t context = 0;
  // SIMD code path of the integer kernels that packed layers run on
  // (model::LayerWeights::packed); unset: kernels::default_target().
  std::optional<kernels::Target> kernel_target = std::nullopt;
  // Packed layers take dynamically int8-quantized activations (one scale per
  // token, W8A8 / W4A8 integer dot products): faster, with a small extra
  // error. Off: they multiply float activations with weights dequantized in
  // registers, computing what the dequantized model computes. Sites whose
  // ActivationQuant is dynamic per-token symmetric int8 always use the int8
  // kernels, which reproduce that simulation exactly.
  bool int8_activations = false;
};

inline constexpr int64_t kDefaultContextCap = 4096;

// Which positions forward() returns logits for.
enum class Logits { All, Last };

// fp32 keys and values of every processed position: [layers][capacity][kv_dim]
// each, rows in position order.
class KVCache {
 public:
  KVCache() = default;
  KVCache(int64_t n_layers, int64_t capacity, int64_t kv_dim);

  int64_t size() const { return size_; }  // positions held
  int64_t capacity() const { return capacity_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t n_layers() const { return n_layers_; }
  void clear() { size_ = 0; }
  // Forgets every position from `n` on (n <= size()).
  void truncate(int64_t n);
  void set_size(int64_t n);  // used by the runtime after a successful forward

  float* keys(int64_t layer, int64_t pos) { return k_.data() + offset(layer, pos); }
  float* values(int64_t layer, int64_t pos) { return v_.data() + offset(layer, pos); }
  const float* keys(int64_t layer, int64_t pos) const { return k_.data() + offset(layer, pos); }
  const float* values(int64_t layer, int64_t pos) const { return v_.data() + offset(layer, pos); }

 private:
  size_t offset(int64_t layer, int64_t pos) const {
    return static_cast<size_t>((layer * capacity_ + pos) * kv_dim_);
  }
  int64_t n_layers_ = 0, capacity_ = 0, kv_dim_ = 0, size_ = 0;
  std::vector<float> k_, v_;
};

class Runtime {
 public:
  // `model` must outlive the runtime. Throws qf::Error for an inconsistent
  // model (packed shapes, transforms) or an impossible context.
  explicit Runtime(const model::Model& model, RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Runs `tokens` at positions n_past() .. n_past() + T - 1 and appends them to
  // the cache. Returns F32 logits [T, vocab] (Logits::All) or [1, vocab] for
  // the last position only (Logits::Last). Throws qf::Error (leaving the cache
  // unchanged) for an empty batch, a token id outside [0, vocab) or a batch
  // that does not fit in the remaining context.
  Tensor forward(std::span<const int32_t> tokens, Logits which = Logits::All) { return forward(cache_, tokens, which); }

  // An empty cache of this runtime's shape (layers, context, kv width), for
  // callers that run several sequences over one runtime.
  KVCache new_cache() const;
  // forward() on `cache` (from new_cache()) instead of the runtime's own cache.
  Tensor forward(KVCache& cache, std::span<const int32_t> tokens, Logits which = Logits::All);
  // One decode step of K sequences: tokens[i] runs at position
  // caches[i]->size() of its own cache and is appended to it. Returns logits
  // [K, vocab]; row i equals forward(*caches[i], {tokens[i]}, Logits::Last) up
  // to float rounding (exactly, for K == 1). Throws qf::Error, leaving every
  // cache unchanged, for K == 0, mismatched lengths, a cache listed twice or
  // of another shape, a full cache or a token id outside the vocabulary.
  Tensor forward_batch(std::span<const int32_t> tokens, std::span<KVCache* const> caches);

  int64_t n_past() const { return cache_.size(); }
  int64_t context() const { return cache_.capacity(); }
  void reset() { cache_.clear(); }
  // Forgets every position from `n` on, so a shared prefix can be reused.
  void truncate(int64_t n) { cache_.truncate(n); }

  const model::Model& model() const { return model_; }
  int n_threads() const { return n_threads_; }
  kernels::Target kernel_target() const { return target_; }

  // Called during every forward with the input of the linear layers at each
  // site of each block ([rows, cols] row-major, before any activation
  // quantization), so calibration can observe activations. Empty: no calls.
  using LinearInputHook =
      std::function<void(int64_t layer, model::InputSite site, const float* x, int64_t rows, int64_t cols)>;
  void set_linear_input_hook(LinearInputHook hook) { hook_ = std::move(hook); }

  // One block at a time, for calibration pipelines that quantize block i and
  // feed its outputs to block i + 1 (GPTQ's sequential mode) without running
  // the whole model:
  //   embed: the hidden states [T, hidden] of `tokens` at positions 0..T-1;
  //   forward_block: block `layer` with `weights` (same shapes as the model's)
  //     on hidden states x [T, hidden] of one sequence at positions 0..T-1, in
  //     place; clears the KV cache first (n_past() is 0 afterwards). With
  //     `stop_after`, it returns right after the hook saw that site's input
  //     (x then holds a partial result): capturing one site costs only the
  //     part of the block in front of it;
  //   head: final norm and lm_head, logits [T, vocab].
  Tensor embed(std::span<const int32_t> tokens) const;
  void forward_block(int64_t layer, const model::LayerWeights& weights, Tensor& x,
                     std::optional<model::InputSite> stop_after = std::nullopt);
  Tensor head(const Tensor& x);

 private:
  struct Scratch;
  // The rows of one call: `rows` consecutive rows of the activation block that
  // run at positions p0.. of `cache`. One segment for forward(), K of one row
  // each for forward_batch().
  struct Segment {
    KVCache* cache = nullptr;
    int64_t p0 = 0, rows = 0;
  };
  // Sets segs_ and the per-row positions / segment indices.
  void set_segments(std::vector<Segment> segments);
  void check_cache(const KVCache& cache) const;
  // Positions: positions[t] when given, else p0 + t.
  void embed_into(std::span<const int32_t> tokens, int64_t p0, float* x, const int64_t* positions = nullptr) const;
  // One transformer block on rows x [T, hidden], in place: the parts its
  // family's BlockSpec names (norms, fused or split qkv, q/k norms, RoPE,
  // sandwich norms, the MLP kind).
  void block(int64_t layer, const model::LayerWeights& L, float* x, int64_t T);
  // out[T, n] = norm of x's rows with weight w (and bias b for LayerNorm), of the spec's kind.
  void norm_rows(const Tensor& w, const Tensor& b, const float* x, int64_t T, int64_t n, float* out);
  void head_into(const float* x, int64_t rows, float* logits);
  void prepare_positions(int64_t T);  // RoPE cos/sin of each row's position, per RoPE of the model
  void run_blocks(std::span<const int32_t> tokens, int64_t out_rows, float* logits);
  // Where row t's key / value of `layer` live in its segment's cache.
  float* key_row(int64_t layer, int64_t t) {
    return segs_[row_seg_[static_cast<size_t>(t)]].cache->keys(layer, row_pos_[static_cast<size_t>(t)]);
  }
  float* value_row(int64_t layer, int64_t t) {
    return segs_[row_seg_[static_cast<size_t>(t)]].cache->values(layer, row_pos_[static_cast<size_t>(t)]);
  }
  // The input of the linear layers at one site, in the forms their matmuls
  // need: float (fake-quantized when the site asks for it) for OpenBLAS, and
  // prepared kernels::Activations, filled on first use by a packed layer.
  struct SiteInput {
    const float* x = nullptr;    // what float layers multiply
    const float* raw = nullptr;  // before any activation quantization
    int64_t rows = 0, cols = 0;
    kernels::ActivationPrecision precision = kernels::ActivationPrecision::F32;
    bool prepared = false;
  };
  // Reports the site's input to the hook and applies the site's activation
  // quantization. Returns nullopt when forward_block was asked to stop here.
  std::optional<SiteInput> linear_input(int64_t layer, const model::LayerWeights& L, model::InputSite site,
                                        const float* x, int64_t rows, int64_t cols);
  // out[rows, n] (+)= input * W^T for linear `kind` of L: the integer kernels
  // when it is packed, else OpenBLAS on its float weight (GPT-2 float weights
  // in their Conv1D orientation).
  void linear(const model::LayerWeights& L, model::LinearKind kind, SiteInput& in, float* out, int64_t ldc,
              bool accumulate);
  void packed_linear(const kernels::PackedMatrix& w, SiteInput& in, float* out, int64_t ldc, bool accumulate);
  // out[rows, tr.size] = x tr (model::InputTransform), split over the pool by rows.
  void apply_input_transform(const model::InputTransform& tr, const float* x, int64_t rows, float* out);
  // Causal attention of T queries (row stride q_stride), each at its row's
  // position against layer `layer` of its segment's cache; writes [T, n_heads*head_dim].
  void attention(int64_t layer, const float* q, int64_t q_stride, int64_t T, float* out);
  // fn(row_begin, row_end) over [0, rows), on the pool when the work is large.
  void for_rows(int64_t rows, int64_t work_per_row, const std::function<void(int64_t, int64_t)>& fn);

  const model::Model& model_;
  const model::BlockSpec& spec_;
  int n_threads_;
  kernels::Target target_;
  bool int8_activations_;
  std::unique_ptr<ThreadPool> pool_;
  KVCache cache_;
  std::vector<Segment> segs_;                   // the current call's rows
  std::vector<size_t> row_seg_;                 // row -> index into segs_
  std::vector<int64_t> row_pos_;                // row -> position in its cache
  std::unique_ptr<Scratch> scratch_;
  LinearInputHook hook_;
  std::optional<model::InputSite> stop_after_;  // set only during forward_block
};

}  // namespace qf::runtime
