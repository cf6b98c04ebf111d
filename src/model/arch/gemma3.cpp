// Gemma 3 text decoders (model_type "gemma3_text": Gemma3ForCausalLM, e.g.
// gemma-3-270m and gemma-3-1b): RMSNorm with (1 + w), embedding scaled by
// sqrt(hidden), GeGLU, q/k norms, sandwich norms around attention and MLP,
// sliding-window layers with their own RoPE base between global layers,
// attention scaled by query_pre_attn_scalar, optional tanh soft-capping of
// the final logits.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/arch/families.h"
#include "model/arch/hf_keys.h"
#include "model/rope.h"

namespace qf::model {
namespace {

using nlohmann::json;

ModelConfig gemma3_from_hf(const json& j) {
  ModelConfig c = hf::parse_rotary_decoder(
      j, "gemma3_text", {.max_positions = 131072, .norm_eps = 1e-6, .rope_theta = 1e6, .tie_embeddings = true});
  if (!hf::present(j, "head_dim")) c.head_dim = 256;
  const char* act_key = hf::present(j, "hidden_activation") ? "hidden_activation" : "hidden_act";
  hf::require_string(j, act_key, "gelu_pytorch_tanh", {"gelu_pytorch_tanh", "gelu_new"}, "gemma3_text");
  QF_CHECK(!hf::bool_or(j, "use_bidirectional_attention", false),
           "gemma3_text \"use_bidirectional_attention\": true (an encoder) is not supported");
  c.query_pre_attn_scalar = static_cast<float>(hf::number_or(j, "query_pre_attn_scalar", 256));
  // "attn_logit_softcapping" is a Gemma 2 setting that Gemma 3 configs carry
  // but neither transformers' Gemma3Attention nor llama.cpp's gemma3 graph
  // applies; read, then ignored, as they do.
  (void)hf::number_or(j, "attn_logit_softcapping", 0);
  c.final_softcap = static_cast<float>(hf::number_or(j, "final_logit_softcapping", 0));
  c.sliding_window = hf::int_or(j, "sliding_window", 4096);
  c.rope_local_theta = static_cast<float>(hf::number_or(j, "rope_local_base_freq", 10000.0));
  // transformers 5: one RoPE dict per layer type.
  if (hf::present(j, "rope_parameters") && j.at("rope_parameters").contains("full_attention")) {
    const json& rp = j.at("rope_parameters");
    const json& full = rp.at("full_attention");
    if (full.is_object()) {
      c.rope_theta = static_cast<float>(hf::number_or(full, "rope_theta", c.rope_theta));
      c.rope_scaling = rope_type_of(full) == "default" ? json() : full;
      if (c.rope_scaling.is_object()) c.rope_scaling.erase("rope_theta");
    }
    if (rp.contains("sliding_attention") && rp.at("sliding_attention").is_object()) {
      const json& local = rp.at("sliding_attention");
      QF_CHECK(rope_type_of(local) == "default", "gemma3_text sliding_attention rope_type \"{}\" is not supported",
               rope_type_of(local));
      c.rope_local_theta = static_cast<float>(hf::number_or(local, "rope_theta", c.rope_local_theta));
    }
    check_rope_scaling(c.rope_scaling, c.max_positions);
  }
  c.sliding_layers.assign(static_cast<size_t>(std::max<int64_t>(c.n_layers, 0)), false);
  if (hf::present(j, "layer_types")) {
    const json& types = j.at("layer_types");
    QF_CHECK(types.is_array() && static_cast<int64_t>(types.size()) == c.n_layers,
             "\"layer_types\" must list one type per layer ({}), got {}", c.n_layers, hf::show(types));
    for (size_t i = 0; i < types.size(); ++i) {
      const std::string t = types[i].is_string() ? types[i].get<std::string>() : types[i].dump();
      QF_CHECK(t == "sliding_attention" || t == "full_attention",
               "\"layer_types\"[{}] \"{}\" is not supported (sliding_attention, full_attention)", i, t);
      c.sliding_layers[i] = t == "sliding_attention";
    }
  } else {
    const int64_t pattern = hf::int_or(j, "sliding_window_pattern", 6);
    QF_CHECK(pattern > 0, "\"sliding_window_pattern\" must be positive, got {}", pattern);
    for (int64_t i = 0; i < c.n_layers; ++i) c.sliding_layers[static_cast<size_t>(i)] = (i + 1) % pattern != 0;
  }
  return c;
}

void gemma3_to_hf(const ModelConfig& c, json& j) {
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["attention_bias"] = c.attention_bias;
  // An int in transformers' Gemma3TextConfig, which refuses 256.0.
  const float q = c.query_pre_attn_scalar;
  j["query_pre_attn_scalar"] = q == std::floor(q) && q < 1e9f ? json(static_cast<int64_t>(q)) : hf::float_json(q);
  j["sliding_window"] = c.sliding_window;
  json types = json::array();
  for (bool s : c.sliding_layers) types.push_back(s ? "sliding_attention" : "full_attention");
  j["layer_types"] = types;
  j["rope_local_base_freq"] = hf::float_json(c.rope_local_theta);
  j["attn_logit_softcapping"] = json();
  j["final_logit_softcapping"] = c.final_softcap > 0 ? hf::float_json(c.final_softcap) : json();
}

}  // namespace

const Family kGemma3{.model_type = "gemma3_text",
                     .hf_architecture = "Gemma3ForCausalLM",
                     .gguf_arch = "gemma3",
                     .block = {.norm = NormKind::RMSPlusOne,
                               .mlp = MlpKind::GeGLU,
                               .qk_norm = true,
                               .sandwich_norms = true,
                               .scale_embedding = true},
                     .biases = {.qkv = BiasRule::IfAttentionBias, .o = BiasRule::IfAttentionBias},
                     .from_hf = gemma3_from_hf,
                     .to_hf = gemma3_to_hf};

}  // namespace qf::model
