#include "model/arch/hf_keys.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"
#include "model/rope.h"

namespace qf::model::hf {

std::string show(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

bool present(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

int64_t get_int(const json& j, const char* key) {
  const json& v = j.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  // Some exporters write integral floats ("hidden_size": 64.0).
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  fail("\"{}\" must be an integer, got {}", key, show(v));
}

int64_t require_int(const json& j, const char* key) {
  QF_CHECK(present(j, key), "missing \"{}\"", key);
  return get_int(j, key);
}

int64_t int_or(const json& j, const char* key, int64_t fallback) {
  return present(j, key) ? get_int(j, key) : fallback;
}

double number_or(const json& j, const char* key, double fallback) {
  if (!present(j, key)) return fallback;
  const json& v = j.at(key);
  QF_CHECK(v.is_number(), "\"{}\" must be a number, got {}", key, show(v));
  return v.get<double>();
}

bool bool_or(const json& j, const char* key, bool fallback) {
  if (!present(j, key)) return fallback;
  const json& v = j.at(key);
  QF_CHECK(v.is_boolean(), "\"{}\" must be true or false, got {}", key, show(v));
  return v.get<bool>();
}

std::string string_or(const json& j, const char* key, const std::string& fallback) {
  if (!present(j, key)) return fallback;
  const json& v = j.at(key);
  QF_CHECK(v.is_string(), "\"{}\" must be a string, got {}", key, show(v));
  return v.get<std::string>();
}

int32_t token_id(const json& j, const char* key) {
  if (!present(j, key)) return -1;
  const json& v = j.at(key);
  const json& first = v.is_array() ? (v.empty() ? json() : v.front()) : v;
  if (first.is_null()) return -1;
  QF_CHECK(first.is_number_integer() && first.get<int64_t>() >= 0 &&
               first.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
           "\"{}\" must be a non-negative token id (or a list of them), got {}", key, show(v));
  return static_cast<int32_t>(first.get<int64_t>());
}

json float_json(float f) { return json(std::stod(fmt::format("{}", f))); }

json token_json(int32_t id) { return id < 0 ? json() : json(id); }

void require_string(const json& j, const char* key, const std::string& fallback,
                    std::initializer_list<const char*> allowed, const std::string& model_type) {
  const std::string v = string_or(j, key, fallback);
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", a);
  }
  fail("\"{}\" \"{}\" is not supported for {} (only {})", key, v, model_type, list);
}

ModelConfig parse_rotary_decoder(const json& j, const std::string& model_type, const RotaryDefaults& d) {
  ModelConfig c;
  c.arch = Architecture::Llama;
  c.model_type = model_type;
  c.vocab_size = require_int(j, "vocab_size");
  c.hidden_size = require_int(j, "hidden_size");
  c.intermediate_size = require_int(j, "intermediate_size");
  c.n_layers = require_int(j, "num_hidden_layers");
  c.n_heads = require_int(j, "num_attention_heads");
  c.n_kv_heads = int_or(j, "num_key_value_heads", c.n_heads);
  c.head_dim = present(j, "head_dim") ? get_int(j, "head_dim") : (c.n_heads > 0 ? c.hidden_size / c.n_heads : 0);
  c.max_positions = int_or(j, "max_position_embeddings", d.max_positions);
  c.norm_eps = static_cast<float>(number_or(j, "rms_norm_eps", d.norm_eps));
  c.rope_theta = static_cast<float>(number_or(j, "rope_theta", d.rope_theta));
  c.tie_embeddings = bool_or(j, "tie_word_embeddings", d.tie_embeddings);
  c.attention_bias = bool_or(j, "attention_bias", false);
  c.bos_token_id = token_id(j, "bos_token_id");
  c.eos_token_id = token_id(j, "eos_token_id");
  if (present(j, "rope_scaling")) c.rope_scaling = j.at("rope_scaling");
  // transformers 5 groups the RoPE settings as "rope_parameters" (theta included).
  if (present(j, "rope_parameters")) {
    const json& rp = j.at("rope_parameters");
    QF_CHECK(rp.is_object(), "\"rope_parameters\" must be an object, got {}", show(rp));
    if (!present(j, "rope_theta")) c.rope_theta = static_cast<float>(number_or(rp, "rope_theta", d.rope_theta));
    if (c.rope_scaling.is_null() && rope_type_of(rp) != "default") c.rope_scaling = rp;
  }
  if (c.rope_scaling.is_object()) c.rope_scaling.erase("rope_theta");  // kept in rope_theta
  check_rope_scaling(c.rope_scaling, c.max_positions);
  return c;
}

void write_rotary_decoder(const ModelConfig& c, std::string_view hf_architecture, json& j) {
  j["architectures"] = {std::string(hf_architecture)};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_positions;
  j["rms_norm_eps"] = float_json(c.norm_eps);
  j["rope_theta"] = float_json(c.rope_theta);
  j["rope_scaling"] = c.rope_scaling;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["bos_token_id"] = token_json(c.bos_token_id);
  j["eos_token_id"] = token_json(c.eos_token_id);
  j["torch_dtype"] = "float32";
}

}  // namespace qf::model::hf
