#include "model/config.h"

#include <cmath>
#include <limits>
#include <string>

#include <fmt/format.h>

#include "core/error.h"
#include "formats/llama2c.h"

namespace qf::model {
namespace {

using nlohmann::json;

// A short, readable rendering of a config value for error messages.
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

// bos/eos ids: an integer, a list of integers (the first is kept), or absent/null (-1).
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

// The float as the shortest decimal that reads back to the same float, so
// 1e-5f is written as 1e-05 rather than 9.999999747378752e-06.
json float_json(float f) { return json(std::stod(fmt::format("{}", f))); }

ModelConfig parse_llama_family(const json& j, const std::string& model_type) {
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
  const int64_t default_positions = model_type == "llama" ? 2048 : model_type == "mistral" ? 4096 * 32 : 32768;
  c.max_positions = int_or(j, "max_position_embeddings", default_positions);
  c.norm_eps = static_cast<float>(number_or(j, "rms_norm_eps", 1e-6));
  c.rope_theta = static_cast<float>(number_or(j, "rope_theta", 10000.0));
  c.tie_embeddings = bool_or(j, "tie_word_embeddings", false);
  // Qwen2's q/k/v projections always carry a bias; Llama's only with attention_bias.
  c.attention_bias = model_type == "qwen2" ? true : bool_or(j, "attention_bias", false);
  c.bos_token_id = token_id(j, "bos_token_id");
  c.eos_token_id = token_id(j, "eos_token_id");

  const std::string act = string_or(j, "hidden_act", "silu");
  QF_CHECK(act == "silu", "\"hidden_act\" {} is not supported for {} (only \"silu\")", show(j.at("hidden_act")),
           model_type);
  // Only LlamaConfig knows mlp_bias; the other families would drop the biases.
  if (model_type == "llama") {
    c.mlp_bias = bool_or(j, "mlp_bias", false);
  } else {
    QF_CHECK(!bool_or(j, "mlp_bias", false), "\"mlp_bias\": true is not supported for {}", model_type);
  }
  if (model_type == "mistral") {
    c.sliding_window = int_or(j, "sliding_window", 0);
  } else if (model_type == "qwen2") {
    QF_CHECK(!bool_or(j, "use_sliding_window", false),
             "qwen2 \"use_sliding_window\": true (sliding window on some layers) is not supported");
  }
  if (present(j, "rope_scaling")) c.rope_scaling = j.at("rope_scaling");
  // Newer transformers releases group the RoPE settings as "rope_parameters".
  if (present(j, "rope_parameters")) {
    const json& rp = j.at("rope_parameters");
    QF_CHECK(rp.is_object(), "\"rope_parameters\" must be an object, got {}", show(rp));
    if (!present(j, "rope_theta")) c.rope_theta = static_cast<float>(number_or(rp, "rope_theta", 10000.0));
    if (string_or(rp, "rope_type", "default") != "default" && c.rope_scaling.is_null()) c.rope_scaling = rp;
  }
  return c;
}

ModelConfig parse_gpt2(const json& j) {
  ModelConfig c;
  c.arch = Architecture::GPT2;
  c.model_type = "gpt2";
  c.vocab_size = require_int(j, "vocab_size");
  c.hidden_size = require_int(j, "n_embd");
  c.n_layers = require_int(j, "n_layer");
  c.n_heads = require_int(j, "n_head");
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
  c.intermediate_size = int_or(j, "n_inner", 4 * c.hidden_size);
  c.max_positions = present(j, "n_positions") ? get_int(j, "n_positions") : int_or(j, "n_ctx", 1024);
  c.norm_eps = static_cast<float>(number_or(j, "layer_norm_epsilon", 1e-5));
  c.tie_embeddings = bool_or(j, "tie_word_embeddings", true);
  c.attention_bias = true;
  c.bos_token_id = token_id(j, "bos_token_id");
  c.eos_token_id = token_id(j, "eos_token_id");

  const std::string act = string_or(j, "activation_function", "gelu_new");
  QF_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh",
           "\"activation_function\" \"{}\" is not supported for gpt2 (only the tanh GELU: \"gelu_new\", "
           "\"gelu_pytorch_tanh\")",
           act);
  QF_CHECK(bool_or(j, "scale_attn_weights", true), "\"scale_attn_weights\": false is not supported");
  QF_CHECK(!bool_or(j, "scale_attn_by_inverse_layer_idx", false),
           "\"scale_attn_by_inverse_layer_idx\": true is not supported");
  return c;
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& j, const std::string& source) {
  return with_context(source, [&] {
    QF_CHECK(j.is_object(), "config must be a JSON object, got {}", show(j));
    QF_CHECK(present(j, "model_type"), "missing \"model_type\" (expected llama, mistral, qwen2 or gpt2)");
    QF_CHECK(j.at("model_type").is_string(), "\"model_type\" must be a string, got {}", show(j.at("model_type")));
    const std::string type = j.at("model_type").get<std::string>();
    ModelConfig c;
    if (type == "llama" || type == "mistral" || type == "qwen2") {
      c = parse_llama_family(j, type);
    } else if (type == "gpt2") {
      c = parse_gpt2(j);
    } else {
      fail("unsupported model_type \"{}\" (supported: llama, mistral, qwen2, gpt2)", type);
    }
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
  json j;
  auto id = [](int32_t v) { return v < 0 ? json() : json(v); };
  if (arch == Architecture::GPT2) {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["model_type"] = "gpt2";
    j["vocab_size"] = vocab_size;
    j["n_embd"] = hidden_size;
    j["n_layer"] = n_layers;
    j["n_head"] = n_heads;
    j["n_inner"] = intermediate_size;
    j["n_positions"] = max_positions;
    j["n_ctx"] = max_positions;
    j["layer_norm_epsilon"] = float_json(norm_eps);
    j["activation_function"] = "gelu_new";
    j["tie_word_embeddings"] = tie_embeddings;
    j["bos_token_id"] = id(bos_token_id);
    j["eos_token_id"] = id(eos_token_id);
    j["torch_dtype"] = "float32";
    return j;
  }
  const char* arch_name = model_type == "mistral" ? "MistralForCausalLM"
                          : model_type == "qwen2" ? "Qwen2ForCausalLM"
                                                  : "LlamaForCausalLM";
  j["architectures"] = {arch_name};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = n_layers;
  j["num_attention_heads"] = n_heads;
  j["num_key_value_heads"] = n_kv_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_positions;
  j["rms_norm_eps"] = float_json(norm_eps);
  j["rope_theta"] = float_json(rope_theta);
  j["rope_scaling"] = rope_scaling;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = tie_embeddings;
  if (model_type == "llama") {
    j["attention_bias"] = attention_bias;
    j["mlp_bias"] = mlp_bias;
  }
  if (model_type == "mistral") j["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json();
  if (model_type == "qwen2") j["use_sliding_window"] = false;
  j["bos_token_id"] = id(bos_token_id);
  j["eos_token_id"] = id(eos_token_id);
  j["torch_dtype"] = "float32";
  return j;
}

void ModelConfig::validate(const std::string& source) const {
  auto check = [&] {
    const bool llama = arch == Architecture::Llama;
    QF_CHECK(llama ? (model_type == "llama" || model_type == "mistral" || model_type == "qwen2")
                   : model_type == "gpt2",
             "model_type \"{}\" does not match the {} architecture", model_type, llama ? "Llama" : "GPT-2");
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
    if (llama) {
      QF_CHECK(head_dim % 2 == 0, "head_dim {} must be even for RoPE", head_dim);
      QF_CHECK(std::isfinite(rope_theta) && rope_theta > 0, "rope_theta must be positive, got {}", rope_theta);
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
