#include "model/config.h"

#include <cmath>
#include <limits>
#include <string>

#include <fmt/format.h>

#include "core/error.h"
#include "formats/llama2c.h"
#include "model/arch/family.h"
#include "model/arch/hf_keys.h"
#include "model/rope.h"

namespace qf::model {

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& j, const std::string& source) {
  return with_context(source, [&] {
    QF_CHECK(j.is_object(), "config must be a JSON object, got {}", hf::show(j));
    QF_CHECK(hf::present(j, "model_type"), "missing \"model_type\" (supported: {})", supported_model_types());
    QF_CHECK(j.at("model_type").is_string(), "\"model_type\" must be a string, got {}", hf::show(j.at("model_type")));
    const std::string type = j.at("model_type").get<std::string>();
    const Family* family = find_family(type);
    QF_CHECK(family, "unsupported model_type \"{}\" (supported: {})", type, supported_model_types());
    ModelConfig c = family->from_hf(j);
    c.validate("");
    return c;
  });
}

ModelConfig ModelConfig::from_llama2c(const formats::Llama2cConfig& l) {
  ModelConfig c;
  c.arch = Architecture::Llama;
  c.model_type = "llama";
  c.vocab_size = l.vocab_size;
  c.hidden_size = l.dim;
  c.intermediate_size = l.hidden_dim;
  c.n_layers = l.n_layers;
  c.n_heads = l.n_heads;
  c.n_kv_heads = l.n_kv_heads;
  c.head_dim = l.n_heads > 0 ? l.dim / l.n_heads : 0;
  c.max_positions = l.seq_len;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tie_embeddings = l.shared_classifier;
  c.attention_bias = false;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.validate("llama2.c config");
  return c;
}

nlohmann::json ModelConfig::to_hf_json() const {
  const Family& f = family_of(*this);
  nlohmann::json j;
  if (f.layout == Architecture::Llama) hf::write_rotary_decoder(*this, f.hf_architecture, j);
  f.to_hf(*this, j);
  return j;
}

float ModelConfig::attention_scale() const {
  const double d = query_pre_attn_scalar > 0 ? query_pre_attn_scalar : static_cast<double>(head_dim);
  return static_cast<float>(1.0 / std::sqrt(d));
}

void ModelConfig::validate(const std::string& source) const {
  auto check = [&] {
    const bool llama = arch == Architecture::Llama;
    const Family& family = family_of(*this);
    QF_CHECK(family.layout == arch, "model_type \"{}\" does not match the {} tensor layout", model_type,
             llama ? "Llama" : "GPT-2");
    const std::pair<const char*, int64_t> sizes[] = {
        {"vocab_size", vocab_size}, {"hidden_size", hidden_size}, {"intermediate_size", intermediate_size},
        {"number of layers", n_layers}, {"number of attention heads", n_heads},
        {"number of key/value heads", n_kv_heads}, {"head_dim", head_dim},
        {"max_position_embeddings", max_positions}};
    for (const auto& [name, v] : sizes) QF_CHECK(v > 0, "{} must be positive, got {}", name, v);
    // Keep every product the runtime forms (positions x hidden, vocab x hidden)
    // far from int64 overflow; no real model is anywhere near.
    constexpr int64_t kLimit = int64_t{1} << 31;
    for (const auto& [name, v] : sizes) QF_CHECK(v < kLimit, "{} {} is implausibly large", name, v);
    QF_CHECK(vocab_size <= std::numeric_limits<int32_t>::max(), "vocab_size {} does not fit int32 token ids",
             vocab_size);
    QF_CHECK(n_heads % n_kv_heads == 0, "number of key/value heads {} does not divide the number of heads {}",
             n_kv_heads, n_heads);
    QF_CHECK(std::isfinite(norm_eps) && norm_eps > 0, "norm epsilon must be positive, got {}", norm_eps);
    QF_CHECK(sliding_window >= 0, "sliding_window must be positive or absent, got {}", sliding_window);
    QF_CHECK(sliding_layers.empty() || static_cast<int64_t>(sliding_layers.size()) == n_layers,
             "{} layer types for {} layers", sliding_layers.size(), n_layers);
    for (const auto& [name, v] : {std::pair<const char*, float>{"rope_local_theta", rope_local_theta},
                                  {"query_pre_attn_scalar", query_pre_attn_scalar},
                                  {"attn_logit_softcapping", attn_softcap},
                                  {"final_logit_softcapping", final_softcap}})
      QF_CHECK(std::isfinite(v) && v >= 0, "{} must be positive or absent, got {}", name, v);
    check_rope_scaling(rope_scaling, max_positions);
    if (llama) {
      QF_CHECK(head_dim % 2 == 0, "head_dim {} must be even for RoPE", head_dim);
      QF_CHECK(std::isfinite(rope_theta) && rope_theta > 0, "rope_theta must be positive, got {}", rope_theta);
      if (rope_type_of(rope_scaling) == "longrope")
        QF_CHECK(static_cast<int64_t>(rope_scaling.at("short_factor").size()) == head_dim / 2,
                 "rope_scaling longrope has {} factors per set, expected head_dim / 2 = {}",
                 rope_scaling.at("short_factor").size(), head_dim / 2);
    } else {
      QF_CHECK(n_kv_heads == n_heads, "gpt2 has no grouped-query attention ({} heads, {} key/value heads)",
               n_heads, n_kv_heads);
      QF_CHECK(head_dim * n_heads == hidden_size, "n_head {} does not divide n_embd {}", n_heads, hidden_size);
      QF_CHECK(attention_bias, "gpt2 always has attention biases");
    }
  };
  if (source.empty()) {
    check();
  } else {
    with_context(source, check);
  }
}

}  // namespace qf::model
