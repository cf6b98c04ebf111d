// Llama (1, 2, 3.x, SmolLM, TinyLlama) and Mistral: RMSNorm, rotary
// positions with any supported rope_scaling, grouped-query attention, SwiGLU.
#include "core/error.h"
#include "model/arch/families.h"
#include "model/arch/hf_keys.h"

namespace qf::model {
namespace {

using nlohmann::json;

ModelConfig llama_from_hf(const json& j) {
  ModelConfig c = hf::parse_rotary_decoder(j, "llama", {.max_positions = 2048});
  hf::require_string(j, "hidden_act", "silu", {"silu"}, "llama");
  c.mlp_bias = hf::bool_or(j, "mlp_bias", false);
  return c;
}

void llama_to_hf(const ModelConfig& c, json& j) {
  j["hidden_act"] = "silu";
  j["attention_bias"] = c.attention_bias;
  j["mlp_bias"] = c.mlp_bias;
}

ModelConfig mistral_from_hf(const json& j) {
  ModelConfig c = hf::parse_rotary_decoder(j, "mistral", {.max_positions = 4096 * 32});
  hf::require_string(j, "hidden_act", "silu", {"silu"}, "mistral");
  QF_CHECK(!hf::bool_or(j, "mlp_bias", false), "\"mlp_bias\": true is not supported for mistral");
  c.sliding_window = hf::int_or(j, "sliding_window", 0);
  return c;
}

void mistral_to_hf(const ModelConfig& c, json& j) {
  j["hidden_act"] = "silu";
  j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json();
}

}  // namespace

const Family kLlama{.model_type = "llama",
                    .hf_architecture = "LlamaForCausalLM",
                    .gguf_arch = "llama",
                    .block = {},
                    .biases = {.qkv = BiasRule::IfAttentionBias, .o = BiasRule::IfAttentionBias,
                               .mlp = BiasRule::IfMlpBias},
                    .from_hf = llama_from_hf,
                    .to_hf = llama_to_hf};

const Family kMistral{.model_type = "mistral",
                      .hf_architecture = "MistralForCausalLM",
                      .gguf_arch = "llama",
                      .block = {},
                      .biases = {},  // no linear layer has a bias
                      .from_hf = mistral_from_hf,
                      .to_hf = mistral_to_hf};

}  // namespace qf::model
