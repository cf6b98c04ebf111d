// Qwen2 / Qwen2.5 (Llama's block with q/k/v biases) and Qwen3 (no biases by
// default, a per-head RMSNorm on q and k before RoPE, head_dim independent of
// hidden_size / heads).
#include "core/error.h"
#include "model/arch/families.h"
#include "model/arch/hf_keys.h"

namespace qf::model {
namespace {

using nlohmann::json;

void check_no_sliding(const json& j, const char* type) {
  QF_CHECK(!hf::bool_or(j, "use_sliding_window", false),
           "{} \"use_sliding_window\": true (sliding window on some layers) is not supported", type);
  QF_CHECK(!hf::bool_or(j, "mlp_bias", false), "\"mlp_bias\": true is not supported for {}", type);
}

ModelConfig qwen2_from_hf(const json& j) {
  ModelConfig c = hf::parse_rotary_decoder(j, "qwen2", {.max_positions = 32768});
  hf::require_string(j, "hidden_act", "silu", {"silu"}, "qwen2");
  check_no_sliding(j, "qwen2");
  c.attention_bias = true;  // Qwen2Attention always has q/k/v biases
  return c;
}

ModelConfig qwen3_from_hf(const json& j) {
  ModelConfig c = hf::parse_rotary_decoder(j, "qwen3", {.max_positions = 32768});
  hf::require_string(j, "hidden_act", "silu", {"silu"}, "qwen3");
  check_no_sliding(j, "qwen3");
  return c;
}

void qwen2_to_hf(const ModelConfig&, json& j) {
  j["hidden_act"] = "silu";
  j["use_sliding_window"] = false;
}

void qwen3_to_hf(const ModelConfig& c, json& j) {
  qwen2_to_hf(c, j);
  j["attention_bias"] = c.attention_bias;
}

}  // namespace

const Family kQwen2{.model_type = "qwen2",
                    .hf_architecture = "Qwen2ForCausalLM",
                    .gguf_arch = "qwen2",
                    .block = {},
                    .biases = {.qkv = BiasRule::Always},
                    .from_hf = qwen2_from_hf,
                    .to_hf = qwen2_to_hf};

const Family kQwen3{.model_type = "qwen3",
                    .hf_architecture = "Qwen3ForCausalLM",
                    .gguf_arch = "qwen3",
                    .block = {.qk_norm = true},
                    .biases = {.qkv = BiasRule::IfAttentionBias, .o = BiasRule::IfAttentionBias},
                    .from_hf = qwen3_from_hf,
                    .to_hf = qwen3_to_hf};

}  // namespace qf::model
