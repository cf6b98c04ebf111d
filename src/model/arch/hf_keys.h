// Reading and writing Hugging Face config.json keys, shared by the family
// files: typed getters whose errors name the key and show the value, and the
// keys every rotary decoder (Llama, Mistral, Qwen, Gemma) has in common.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace qf::model::hf {

using nlohmann::json;

std::string show(const json& v);  // short rendering of a value for messages
bool present(const json& j, const char* key);  // present and not null
int64_t get_int(const json& j, const char* key);
int64_t require_int(const json& j, const char* key);
int64_t int_or(const json& j, const char* key, int64_t fallback);
double number_or(const json& j, const char* key, double fallback);
bool bool_or(const json& j, const char* key, bool fallback);
std::string string_or(const json& j, const char* key, const std::string& fallback);
// bos/eos ids: an integer, a list (the first is kept), or absent/null (-1).
int32_t token_id(const json& j, const char* key);
// The shortest decimal that reads back to the same float (1e-05, not 9.99e-06).
json float_json(float f);
json token_json(int32_t id);  // null for -1
// Throws unless `j[key]`, when present, is one of `allowed` ("hidden_act" "silu").
void require_string(const json& j, const char* key, const std::string& fallback,
                    std::initializer_list<const char*> allowed, const std::string& model_type);

struct RotaryDefaults {
  int64_t max_positions = 2048;
  double norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_embeddings = false;
};
// vocab_size, hidden_size, intermediate_size, num_hidden_layers,
// num_attention_heads, num_key_value_heads, head_dim, max_position_embeddings,
// rms_norm_eps, rope_theta and rope_scaling (or a flat "rope_parameters"),
// tie_word_embeddings, attention_bias, bos/eos ids.
ModelConfig parse_rotary_decoder(const json& j, const std::string& model_type, const RotaryDefaults& d);
// The same keys, as transformers reads them, plus "architectures".
void write_rotary_decoder(const ModelConfig& c, std::string_view hf_architecture, json& j);

}  // namespace qf::model::hf
