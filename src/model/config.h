// The hyper-parameters of a decoder-only transformer, in Hugging Face terms.
// Every loader (HF config.json, llama2.c header, GGUF metadata) produces one,
// and every writer consumes one; the forward pass reads nothing else.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qf::formats {
struct Llama2cConfig;
}

namespace qf::model {

// How a family's tensors are named and oriented (model/arch/family.h says
// which family uses which; what a block computes is its BlockSpec).
enum class Architecture {
  Llama,  // model.layers.N.self_attn.q_proj ...: nn.Linear [out, in] (Llama, Mistral, Qwen, Gemma)
  GPT2,   // h.N.attn.c_attn ...: Conv1D [in, out], fused qkv, learned positions
};

struct ModelConfig {
  Architecture arch = Architecture::Llama;
  std::string model_type = "llama";  // HF "model_type": one of model::families() (model/arch/family.h)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;            // == n_heads without grouped-query attention
  int64_t head_dim = 0;              // hidden_size / n_heads unless the config says otherwise
  int64_t max_positions = 0;         // context length the model was trained for
  float norm_eps = 1e-5f;            // RMSNorm / LayerNorm epsilon
  float rope_theta = 10000.0f;       // Llama family only
  bool tie_embeddings = false;       // lm_head shares the token embedding
  bool attention_bias = false;       // q/k/v (and o for GPT-2) have biases
  bool mlp_bias = false;             // Llama only: gate/up/down have biases (transformers' LlamaConfig)
  int32_t bos_token_id = -1;
  int32_t eos_token_id = -1;           // the first one when config.json lists several
  // Llama family: attention sees only the last `sliding_window` positions
  // (Mistral's "sliding_window"); 0 = full causal attention.
  int64_t sliding_window = 0;
  // Llama family: config.json "rope_scaling" as given (null = none). Kept so
  // configs round-trip; the fp32 runtime refuses non-null values it does not
  // implement rather than compute wrong logits.
  nlohmann::json rope_scaling;
  // Gemma 3: which layers attend through the sliding window (config.json
  // "layer_types"); empty: every layer does when sliding_window > 0.
  std::vector<bool> sliding_layers;
  // Gemma 3: the RoPE base of the sliding-window layers (never scaled); 0: rope_theta.
  float rope_local_theta = 0.0f;
  // Attention scores are scaled by 1/sqrt(query_pre_attn_scalar) (Gemma) when
  // > 0, else by 1/sqrt(head_dim).
  float query_pre_attn_scalar = 0.0f;
  // tanh soft-capping, cap * tanh(x / cap), of attention scores and of the
  // final logits (Gemma 2 style); 0 = none.
  float attn_softcap = 0.0f;
  float final_softcap = 0.0f;

  // Whether layer `layer` attends through the sliding window.
  bool layer_is_sliding(int64_t layer) const {
    if (sliding_window <= 0) return false;
    return sliding_layers.empty() || sliding_layers[static_cast<size_t>(layer)];
  }
  // The attention window of `layer` in positions (0 = full causal attention).
  int64_t layer_window(int64_t layer) const { return layer_is_sliding(layer) ? sliding_window : 0; }
  float attention_scale() const;

  bool operator==(const ModelConfig&) const = default;

  // Parses and validates a Hugging Face config.json; `source` names the file
  // in errors. An unknown model_type is a qf::Error naming it.
  static ModelConfig from_hf_json(const nlohmann::json& j, const std::string& source);
  // llama2.c checkpoint header: Llama, RMSNorm eps 1e-5, RoPE theta 10000,
  // BOS 1, EOS 2, tied embeddings unless the classifier is unshared.
  static ModelConfig from_llama2c(const formats::Llama2cConfig& c);
  // A config.json Hugging Face transformers accepts for this model
  // ("architectures", "model_type" and the keys from_hf_json reads);
  // from_hf_json(to_hf_json()) == *this.
  nlohmann::json to_hf_json() const;
  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  // Throws qf::Error naming `source` when fields are missing or inconsistent
  // (heads not dividing, non-positive sizes).
  void validate(const std::string& source) const;
};

}  // namespace qf::model
