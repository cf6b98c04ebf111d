// The hyper-parameters of a decoder-only transformer, in Hugging Face terms.
// Every loader (HF config.json, llama2.c header, GGUF metadata) produces one,
// and every writer consumes one; the forward pass reads nothing else.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace qf::formats {
struct Llama2cConfig;
}

namespace qf::model {

enum class Architecture {
  Llama,  // llama, mistral, qwen2: RMSNorm, RoPE, GQA, SwiGLU
  GPT2,   // LayerNorm, learned positions, fused qkv, GELU-tanh
};

struct ModelConfig {
  Architecture arch = Architecture::Llama;
  std::string model_type = "llama";  // HF "model_type": llama | mistral | qwen2 | gpt2
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
