// GPT-2: LayerNorm, learned positions, fused qkv (c_attn), GELU-tanh MLP,
// Conv1D weights stored [in, out].
#include "core/error.h"
#include "model/arch/families.h"
#include "model/arch/hf_keys.h"

namespace qf::model {
namespace {

using nlohmann::json;

ModelConfig gpt2_from_hf(const json& j) {
  ModelConfig c;
  c.arch = Architecture::GPT2;
  c.model_type = "gpt2";
  c.vocab_size = hf::require_int(j, "vocab_size");
  c.hidden_size = hf::require_int(j, "n_embd");
  c.n_layers = hf::require_int(j, "n_layer");
  c.n_heads = hf::require_int(j, "n_head");
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
  c.intermediate_size = hf::int_or(j, "n_inner", 4 * c.hidden_size);
  c.max_positions = hf::present(j, "n_positions") ? hf::get_int(j, "n_positions") : hf::int_or(j, "n_ctx", 1024);
  c.norm_eps = static_cast<float>(hf::number_or(j, "layer_norm_epsilon", 1e-5));
  c.tie_embeddings = hf::bool_or(j, "tie_word_embeddings", true);
  c.attention_bias = true;
  c.bos_token_id = hf::token_id(j, "bos_token_id");
  c.eos_token_id = hf::token_id(j, "eos_token_id");
  const std::string act = hf::string_or(j, "activation_function", "gelu_new");
  QF_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh",
           "\"activation_function\" \"{}\" is not supported for gpt2 (only the tanh GELU: \"gelu_new\", "
           "\"gelu_pytorch_tanh\")",
           act);
  QF_CHECK(hf::bool_or(j, "scale_attn_weights", true), "\"scale_attn_weights\": false is not supported");
  QF_CHECK(!hf::bool_or(j, "scale_attn_by_inverse_layer_idx", false),
           "\"scale_attn_by_inverse_layer_idx\": true is not supported");
  return c;
}

void gpt2_to_hf(const ModelConfig& c, json& j) {
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = c.vocab_size;
  j["n_embd"] = c.hidden_size;
  j["n_layer"] = c.n_layers;
  j["n_head"] = c.n_heads;
  j["n_inner"] = c.intermediate_size;
  j["n_positions"] = c.max_positions;
  j["n_ctx"] = c.max_positions;
  j["layer_norm_epsilon"] = hf::float_json(c.norm_eps);
  j["activation_function"] = "gelu_new";
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["bos_token_id"] = hf::token_json(c.bos_token_id);
  j["eos_token_id"] = hf::token_json(c.eos_token_id);
  j["torch_dtype"] = "float32";
}

}  // namespace

const Family kGpt2{.model_type = "gpt2",
                   .hf_architecture = "GPT2LMHeadModel",
                   .gguf_arch = "gpt2",
                   .layout = Architecture::GPT2,
                   .block = {.norm = NormKind::Layer,
                             .mlp = MlpKind::GeluTanh,
                             .learned_positions = true,
                             .conv1d_weights = true,
                             .fused_qkv = true},
                   .biases = {.qkv = BiasRule::Always, .o = BiasRule::Always, .mlp = BiasRule::Always},
                   .from_hf = gpt2_from_hf,
                   .to_hf = gpt2_to_hf};

}  // namespace qf::model
