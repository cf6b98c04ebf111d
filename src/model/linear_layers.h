// The linear layers of a model, enumerated once: their Hugging Face module
// names, which input they read, and where their weight and bias live in a
// LayerWeights. Quantization algorithms, checkpoint writers and the runtime's
// activation capture all walk this list instead of spelling out roles.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/arch/family.h"
#include "model/model.h"

namespace qf::model {

struct LinearLayer {
  int64_t layer = 0;
  LinearKind kind = LinearKind::Q;
  std::string name;  // HF module name: "model.layers.3.self_attn.q_proj", GPT-2 "h.3.attn.c_attn"
  InputSite site = InputSite::AttnIn;
  // GPT-2 Conv1D weights are stored [in, out]; everything else nn.Linear [out, in].
  bool conv1d = false;
  int64_t in_features = 0;
  int64_t out_features = 0;
};

// The linear layers of block `layer` in the order a forward pass runs them
// (q, k, v, o, gate, up, down; GPT-2 c_attn, attn.c_proj, c_fc, mlp.c_proj).
// The lm_head is not included.
std::vector<LinearLayer> block_linears(const ModelConfig& config, int64_t layer);
// Every block's linear layers, block by block.
std::vector<LinearLayer> all_linears(const ModelConfig& config);

// The module prefix of block `layer`: "model.layers.N" (Llama family) or "h.N" (GPT-2).
std::string block_prefix(const ModelConfig& config, int64_t layer);

// "q_proj", "o_proj", "c_attn", ... (the last part of the module name).
std::string linear_kind_name(const ModelConfig& config, LinearKind kind);
std::string input_site_name(InputSite site);  // "attn_in", "attn_out", "ffn_in", "ffn_hidden"

// When transformers gives linear `kind` of this family a bias (model/arch/family.h).
BiasRule bias_rule(const ModelConfig& config, LinearKind kind);
// Whether a bias on `kind` survives a round trip through transformers: the
// rule is not Never (bias correction adds biases only there).
bool can_have_bias(const ModelConfig& config, LinearKind kind);

Tensor& linear_weight(LayerWeights& w, LinearKind kind);
const Tensor& linear_weight(const LayerWeights& w, LinearKind kind);
Tensor& linear_bias(LayerWeights& w, LinearKind kind);
const Tensor& linear_bias(const LayerWeights& w, LinearKind kind);

// The weight as an F32 [out, in] matrix (Conv1D weights transposed into an
// owning copy; nn.Linear F32 weights shared, not copied).
Tensor weight_out_in(const LinearLayer& l, const Tensor& stored);
// The inverse: an [out, in] F32 matrix in the layer's stored orientation.
Tensor weight_to_stored(const LinearLayer& l, const Tensor& out_in);

}  // namespace qf::model
