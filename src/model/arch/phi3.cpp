// Phi-3 / Phi-3.5 / Phi-4 (text): Llama's block (RMSNorm, SwiGLU, rotate_half
// RoPE) with q/k/v stored as one qkv_proj and gate/up as one gate_up_proj
// (split at load, model/arch/fused_projections.h), no biases, an optional
// sliding window on every layer, and "longrope" scaling for the long-context
// variants (short and long per-frequency factors).
#include <cmath>

#include "core/error.h"
#include "model/arch/families.h"
#include "model/arch/hf_keys.h"
#include "model/rope.h"

namespace qf::model {
namespace {

using nlohmann::json;

// transformers' Phi3Config reads the older "su" and "yarn" rope types as
// longrope, and a top-level original_max_position_embeddings wins over one
// inside the RoPE settings (standardize_rope_params): done here, before the
// shared parser checks the settings.
json normalized_rope(const json& j) {
  json out = j;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!hf::present(out, key) || !out.at(key).is_object()) continue;
    json& r = out[key];
    const std::string type = rope_type_of(r);
    if (type == "su" || type == "yarn") {
      r.erase("type");
      r["rope_type"] = "longrope";
    }
    if (rope_type_of(r) == "longrope") {
      if (hf::present(j, "original_max_position_embeddings"))
        r["original_max_position_embeddings"] = hf::get_int(j, "original_max_position_embeddings");
      else if (!hf::present(r, "original_max_position_embeddings"))
        r["original_max_position_embeddings"] = 4096;  // Phi3Config's default
    }
  }
  return out;
}

ModelConfig phi3_from_hf(const json& given) {
  const json j = normalized_rope(given);
  ModelConfig c = hf::parse_rotary_decoder(j, "phi3", {.max_positions = 4096, .norm_eps = 1e-5});
  hf::require_string(j, "hidden_act", "silu", {"silu"}, "phi3");
  double partial = hf::number_or(j, "partial_rotary_factor", 1.0);
  for (const char* key : {"rope_scaling", "rope_parameters"})
    if (hf::present(j, key) && j.at(key).is_object())
      partial = hf::number_or(j.at(key), "partial_rotary_factor", partial);
  QF_CHECK(partial == 1.0,
           "phi3 \"partial_rotary_factor\" {} (RoPE on part of each head, Phi-4-mini) is not supported yet", partial);
  if (c.rope_scaling.is_object()) c.rope_scaling.erase("partial_rotary_factor");
  // Phi3Attention has no bias anywhere, whatever the config says.
  c.attention_bias = false;
  c.sliding_window = hf::int_or(j, "sliding_window", 0);
  return c;
}

void phi3_to_hf(const ModelConfig& c, json& j) {
  j["hidden_act"] = "silu";
  j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json();
  const bool longrope = rope_type_of(c.rope_scaling) == "longrope";
  j["original_max_position_embeddings"] =
      longrope ? c.rope_scaling.at("original_max_position_embeddings") : json(c.max_positions);
  // Phi3Config defaults pad_token_id to 32000, which is out of range for a
  // smaller vocabulary; it only marks nn.Embedding's padding row.
  j["pad_token_id"] = nullptr;
}

constexpr FusedProjection kPhi3Fused[] = {
    {.name = "self_attn.qkv_proj",
     .parts = {{{"self_attn.q_proj", PartRows::QDim},
                {"self_attn.k_proj", PartRows::KvDim},
                {"self_attn.v_proj", PartRows::KvDim}}},
     .n_parts = 3},
    {.name = "mlp.gate_up_proj",
     .parts = {{{"mlp.gate_proj", PartRows::Intermediate}, {"mlp.up_proj", PartRows::Intermediate}, {}}},
     .n_parts = 2},
};

}  // namespace

const Family kPhi3{.model_type = "phi3",
                   .hf_architecture = "Phi3ForCausalLM",
                   .gguf_arch = "phi3",
                   .block = {},
                   .biases = {},  // no linear layer has a bias
                   .fused = kPhi3Fused,
                   .from_hf = phi3_from_hf,
                   .to_hf = phi3_to_hf};

}  // namespace qf::model
