// A decoder-only transformer as plain data: its ModelConfig plus every weight
// by role. Weights that are F32 in the checkpoint stay zero-copy views into
// the memory-mapped file; any other float dtype (F16, BF16, F8, F64) is
// converted to an owning F32 tensor at load.
//
// RoPE layout: all Llama-family q/k weights here use the Hugging Face
// "rotate_half" layout (within a head, dimension i is rotated with
// i + head_dim/2). llama2.c (and Meta's original) checkpoints store q/k rows
// interleaved (dimensions 2i and 2i+1 rotated together); load_model permutes
// them into the HF layout, so the runtime knows only one layout.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/named_tensor.h"
#include "model/config.h"
#include "tokenizer/vocab.h"

namespace qf::kernels {
class PackedMatrix;
}

namespace qf::model {

// The linear layers of a block (model/linear_layers.h enumerates them with
// their names and input sites). QKV is GPT-2's fused c_attn.
enum class LinearKind { Q, K, V, QKV, O, Gate, Up, Down };
inline constexpr int kLinearKinds = 8;

// Where activations enter the linear layers of a block. Layers that read the
// same input share a site (Llama q/k/v read AttnIn, gate/up read FfnIn), so
// they share one smoothing vector and one activation quantizer.
enum class InputSite { AttnIn = 0, AttnOut = 1, FfnIn = 2, FfnHidden = 3 };
inline constexpr int kInputSites = 4;
inline constexpr InputSite kAllInputSites[] = {InputSite::AttnIn, InputSite::AttnOut, InputSite::FfnIn,
                                              InputSite::FfnHidden};

// Simulated integer quantization of a linear layer's input (W8A8): the runtime
// rounds the activations at a site to the integer grid before the matmul.
//   DynamicToken  one symmetric scale per token (row), absmax / qmax, chosen at run time
//   StaticTensor  one scale (and zero point, asymmetric) for every token, calibrated
enum class ActQuantMode { None, DynamicToken, StaticTensor };
struct ActivationQuant {
  ActQuantMode mode = ActQuantMode::None;
  int bits = 8;
  bool symmetric = true;
  float scale = 0.0f;      // StaticTensor only, > 0
  int32_t zero_point = 0;  // StaticTensor asymmetric only
  bool operator==(const ActivationQuant&) const = default;
};

// An orthogonal transform the runtime applies to a site's input before the
// activation quantizer and the matmul (an "online" rotation, QuaRot's online
// Hadamard before down_proj): x <- x Q with Q = R (x) H_block
// (quant/hadamard.h), the layers reading the site holding W Q (algo/rotation.h).
// Plain data; size 0 means no transform.
struct InputTransform {
  int64_t size = 0;   // the site's width, or 0
  int64_t block = 1;  // Walsh-Hadamard block: a power of two dividing size
  Tensor mix;         // F32 [size / block, size / block] orthogonal; empty when size == block
  bool active() const { return size > 0; }
};

// One decoder layer. Matrix layouts differ by architecture because each keeps
// its checkpoint's own orientation (no transposed copies):
//   Llama family: nn.Linear weights, [out, in].
//   GPT-2: Conv1D weights, [in, out].
struct LayerWeights {
  Tensor attn_norm;       // [hidden]   input_layernorm.weight | ln_1.weight
  Tensor attn_norm_bias;  // [hidden]   GPT-2 ln_1.bias; empty for Llama

  // Llama family attention (q/k rows in rotate_half layout).
  Tensor wq;  // [n_heads * head_dim, hidden]
  Tensor wk;  // [n_kv_heads * head_dim, hidden]
  Tensor wv;  // [n_kv_heads * head_dim, hidden]
  Tensor bq, bk, bv;  // [out] when config.attention_bias, else empty

  // GPT-2 fused attention input projection (c_attn): columns are q | k | v.
  Tensor w_qkv;  // [hidden, 3 * hidden]
  Tensor b_qkv;  // [3 * hidden]

  // Attention output projection: Llama o_proj [hidden, n_heads * head_dim];
  // GPT-2 attn.c_proj [hidden, hidden] with bias bo.
  Tensor wo;
  Tensor bo;  // GPT-2 only

  // BlockSpec::qk_norm: the per-head norms of q and k (self_attn.q_norm / k_norm).
  Tensor q_norm, k_norm;  // [head_dim]
  // BlockSpec::sandwich_norms (Gemma): norms of the attention output
  // (post_attention_layernorm) and of the MLP output (post_feedforward_layernorm).
  Tensor attn_out_norm, ffn_out_norm;  // [hidden]

  // The MLP's input norm: post_attention_layernorm (Llama family),
  // pre_feedforward_layernorm (sandwich norms) or ln_2 (GPT-2).
  Tensor ffn_norm;       // [hidden]
  Tensor ffn_norm_bias;  // [hidden]   GPT-2 ln_2.bias

  // MLP. Llama: down(silu(gate(x)) * up(x)), gate/up [intermediate, hidden],
  // down [hidden, intermediate]. GPT-2: w_down(gelu_tanh(x w_up + b_up)) + b_down
  // with w_up = mlp.c_fc [hidden, intermediate], w_down = mlp.c_proj [intermediate, hidden].
  Tensor w_gate, b_gate;  // Llama only
  Tensor w_up, b_up;
  Tensor w_down, b_down;
  // Llama family: bo, b_gate, b_up and b_down are optional (empty when the
  // checkpoint has none); bias correction adds them.

  // Activation quantization per input site (indexed by InputSite).
  std::array<ActivationQuant, kInputSites> act{};
  // Online transforms per input site (indexed by InputSite), applied before act[site].
  std::array<InputTransform, kInputSites> transform{};

  // Linear layers the runtime runs on the integer kernels, indexed by
  // LinearKind: [out, in] for every architecture (GPT-2 too). The float weight
  // of a packed layer is empty; its bias stays a float tensor.
  std::array<std::shared_ptr<const kernels::PackedMatrix>, kLinearKinds> packed{};
  const kernels::PackedMatrix* packed_weight(LinearKind kind) const {
    return packed[static_cast<size_t>(kind)].get();
  }
};

struct Model {
  ModelConfig config;
  std::string source;  // the file or folder it was loaded from (for messages)

  Tensor embed;      // [vocab, hidden]  model.embed_tokens.weight | wte.weight
  Tensor pos_embed;  // [max_positions, hidden]  GPT-2 wpe.weight; empty for Llama
  std::vector<LayerWeights> layers;
  Tensor final_norm;       // [hidden]  model.norm.weight | ln_f.weight
  Tensor final_norm_bias;  // [hidden]  GPT-2 ln_f.bias
  Tensor lm_head;          // [vocab, hidden]; shares embed's bytes when tied
  // The head on the integer kernels instead ([vocab, hidden]); lm_head is then
  // empty. Only untied heads are packed.
  std::shared_ptr<const kernels::PackedMatrix> lm_head_packed;
  // An untied embedding table held packed ([vocab, hidden]; embed is then
  // empty): the runtime dequantizes the rows of the tokens it embeds.
  std::shared_ptr<const kernels::PackedMatrix> embed_packed;

  // Every float weight under its Hugging Face name (GPT-2 without the
  // "transformer." prefix; no lm_head.weight when tied), in HF module order.
  // q/k are in rotate_half layout whatever the source was. Packed layers
  // (LayerWeights::packed) are not float tensors and are not listed.
  std::vector<formats::NamedTensor> named_tensors() const;
  // Number of distinct parameters (a tied head counts once; packed layers count).
  int64_t parameter_count() const;
  // Bytes of every weight as held in memory: float tensors plus packed layers.
  uint64_t weight_bytes() const;
  // Bytes of the packed layers alone (0 for a float model).
  uint64_t packed_bytes() const;
};

// Whether any layer carries an online input transform (a rotated model).
bool has_online_transforms(const Model& model);
// Throws qf::Error "`target` cannot express the online Hadamard transforms of
// a rotated model ..." when it does: formats other than qforge's own folder
// have no place for them, and dropping them would silently change the model.
void require_no_online_transforms(const Model& model, const std::string& target);

// Builds a Model from a validated config and Hugging Face-named tensors
// (what every checkpoint reader returns). Llama family: model.embed_tokens,
// model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj (+ q/k/v .bias when
// attention_bias), post_attention_layernorm, mlp.{gate,up,down}_proj},
// model.norm, and lm_head unless tied (a present lm_head is ignored when tied,
// as transformers does). GPT-2: wte, wpe, h.N.{ln_1, attn.c_attn, attn.c_proj,
// ln_2, mlp.c_fc, mlp.c_proj}, ln_f, all with or without the "transformer."
// prefix; the attention-mask buffers (h.N.attn.bias, h.N.attn.masked_bias)
// and rotary inv_freq buffers are ignored. Throws qf::Error starting with
// `source` naming a missing tensor, a wrong shape (expected and found), a
// non-float dtype, a duplicate name or a tensor no role uses.
// The views in `tensors` are shared, not copied, when they are F32.
// `external` names weights (HF names without the "transformer." prefix) that
// the caller provides itself, such as quantized layers: they are left empty
// instead of demanded, and are unexpected when present in `tensors`.
// When config.mlp_bias, gate/up/down biases are required.
Model build_model(ModelConfig config, const std::vector<formats::NamedTensor>& tensors, const std::string& source,
                  const std::set<std::string>& external = {});

// Loads a model for the runtime from:
//   - a Hugging Face folder: config.json + model.safetensors or a sharded
//     model.safetensors.index.json;
//   - a safetensors file or index with config.json beside it;
//   - a llama2.c checkpoint (.bin file, or a folder holding one): its q/k
//     rows are permuted to the HF rotate_half layout (owning copies of those
//     two tensors per layer; everything else stays mapped).
// Throws qf::Error naming the path.
//   - a GGUF file (F32/F16/BF16 tensors; llama.cpp's q/k permutation undone).
//   - a quantized folder (model/quantized_checkpoint.h): dequantized into
//     float weights, or with options.integer_kernels packed for the integer
//     kernels (model/packed_weights.h); layers the kernels cannot run are then
//     dequantized, with a notice on stderr naming them.
struct LoadOptions {
  bool integer_kernels = false;
};
Model load_model(const std::string& path, const LoadOptions& options = {});

// The tokenizer vocabulary that goes with the model at `path`: from a GGUF
// file's tokenizer.ggml.* keys, else the tokenizer files beside it
// (tokenizer::find_tokenizer).
tokenizer::Vocab load_vocab(const std::string& path);

// True for a file named *.gguf or starting with the GGUF magic.
bool is_gguf_file(const std::filesystem::path& path);

// RoPE row layouts of a q or k projection ([n_heads * head_dim, in], any
// float dtype, returned as F32). Within each head, interleaved row 2i + j
// (j = 0, 1) becomes rotate_half row i + j * head_dim / 2; the inverse undoes it.
Tensor interleaved_to_half_rope_rows(const Tensor& w, int64_t n_heads);
Tensor half_to_interleaved_rope_rows(const Tensor& w, int64_t n_heads);

}  // namespace qf::model
