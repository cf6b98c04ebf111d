// Helpers shared by the model and runtime tests: scratch folders, small random
// checkpoints in the Hugging Face layout, and error-message assertions.
#pragma once

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "formats/named_tensor.h"
#include "formats/safetensors.h"
#include "model/config.h"
#include "model/model.h"
#include <nlohmann/json.hpp>
#include "error_of.h"

namespace qf::model::testing {

using ::qf::test::TempDir;

using ::qf::test::expect_error;  // tests/support/error_of.h

// Deterministic normal numbers (Box-Muller on mt19937_64, so the same on
// every standard library).
class Rng {
 public:
  explicit Rng(uint64_t seed) : rng_(seed) {}
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  float normal(float stddev) {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return static_cast<float>(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  int32_t below(int32_t n) { return static_cast<int32_t>(rng_() % static_cast<uint64_t>(n)); }

 private:
  std::mt19937_64 rng_;
};

// Builds named random tensors: add(name, shape, stddev, mean).
class RandomTensors {
 public:
  explicit RandomTensors(uint64_t seed) : rng_(seed) {}
  void add(const std::string& name, const Shape& shape, float stddev, float mean = 0.0f) {
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (auto& x : v) x = mean + rng_.normal(stddev);
    tensors.push_back({name, Tensor::from_f32(v, shape)});
  }
  std::vector<formats::NamedTensor> tensors;

 private:
  Rng rng_;
};

struct LlamaDims {
  int64_t vocab = 101, hidden = 64, inter = 96, layers = 3, heads = 4, kv_heads = 2, head_dim = 16;
  bool bias = true;
  bool tied = false;
};

// HF Llama tensors with weights scaled so activations stay O(1).
inline std::vector<formats::NamedTensor> random_llama_tensors(const LlamaDims& d, uint64_t seed) {
  RandomTensors r(seed);
  const int64_t q = d.heads * d.head_dim, kv = d.kv_heads * d.head_dim;
  const float sh = 1.0f / std::sqrt(static_cast<float>(d.hidden));
  r.add("model.embed_tokens.weight", {d.vocab, d.hidden}, 1.0f);
  for (int64_t i = 0; i < d.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    r.add(p + "input_layernorm.weight", {d.hidden}, 0.1f, 1.0f);
    r.add(p + "self_attn.q_proj.weight", {q, d.hidden}, 2.0f * sh);
    r.add(p + "self_attn.k_proj.weight", {kv, d.hidden}, 2.0f * sh);
    r.add(p + "self_attn.v_proj.weight", {kv, d.hidden}, sh);
    if (d.bias) {
      r.add(p + "self_attn.q_proj.bias", {q}, 0.2f);
      r.add(p + "self_attn.k_proj.bias", {kv}, 0.2f);
      r.add(p + "self_attn.v_proj.bias", {kv}, 0.2f);
    }
    r.add(p + "self_attn.o_proj.weight", {d.hidden, q}, 1.0f / std::sqrt(static_cast<float>(q)));
    r.add(p + "post_attention_layernorm.weight", {d.hidden}, 0.1f, 1.0f);
    r.add(p + "mlp.gate_proj.weight", {d.inter, d.hidden}, sh);
    r.add(p + "mlp.up_proj.weight", {d.inter, d.hidden}, sh);
    r.add(p + "mlp.down_proj.weight", {d.hidden, d.inter}, 1.0f / std::sqrt(static_cast<float>(d.inter)));
  }
  r.add("model.norm.weight", {d.hidden}, 0.1f, 1.0f);
  if (!d.tied) r.add("lm_head.weight", {d.vocab, d.hidden}, sh * 3.0f);
  return r.tensors;
}

inline std::string llama_config_json(const LlamaDims& d, const std::string& model_type = "llama",
                                     const std::string& extra = "") {
  const std::string bias = model_type == "llama" ? (d.bias ? "\"attention_bias\": true," : "\"attention_bias\": false,")
                                                 : "";
  return "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"" + model_type + "\", " + bias +
         "\"vocab_size\": " + std::to_string(d.vocab) + ", \"hidden_size\": " + std::to_string(d.hidden) +
         ", \"intermediate_size\": " + std::to_string(d.inter) +
         ", \"num_hidden_layers\": " + std::to_string(d.layers) +
         ", \"num_attention_heads\": " + std::to_string(d.heads) +
         ", \"num_key_value_heads\": " + std::to_string(d.kv_heads) + ", \"head_dim\": " +
         std::to_string(d.head_dim) +
         ", \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-05, \"rope_theta\": 5000.0, "
         "\"hidden_act\": \"silu\", \"tie_word_embeddings\": " +
         (d.tied ? "true" : "false") + ", \"bos_token_id\": 1, \"eos_token_id\": 2, \"torch_dtype\": \"float32\"" +
         extra + "}";
}

struct Gpt2Dims {
  int64_t vocab = 97, hidden = 48, heads = 4, layers = 2, positions = 64, inter = 192;
};

inline std::vector<formats::NamedTensor> random_gpt2_tensors(const Gpt2Dims& d, uint64_t seed,
                                                             const std::string& prefix = "") {
  RandomTensors r(seed);
  const int64_t h = d.hidden;
  const float sh = 1.0f / std::sqrt(static_cast<float>(h));
  r.add(prefix + "wte.weight", {d.vocab, h}, 0.5f);
  r.add(prefix + "wpe.weight", {d.positions, h}, 0.2f);
  for (int64_t i = 0; i < d.layers; ++i) {
    const std::string p = prefix + "h." + std::to_string(i) + ".";
    r.add(p + "ln_1.weight", {h}, 0.1f, 1.0f);
    r.add(p + "ln_1.bias", {h}, 0.1f);
    r.add(p + "attn.c_attn.weight", {h, 3 * h}, 2.0f * sh);
    r.add(p + "attn.c_attn.bias", {3 * h}, 0.2f);
    r.add(p + "attn.c_proj.weight", {h, h}, sh);
    r.add(p + "attn.c_proj.bias", {h}, 0.1f);
    r.add(p + "ln_2.weight", {h}, 0.1f, 1.0f);
    r.add(p + "ln_2.bias", {h}, 0.1f);
    r.add(p + "mlp.c_fc.weight", {h, d.inter}, sh);
    r.add(p + "mlp.c_fc.bias", {d.inter}, 0.1f);
    r.add(p + "mlp.c_proj.weight", {d.inter, h}, 1.0f / std::sqrt(static_cast<float>(d.inter)));
    r.add(p + "mlp.c_proj.bias", {h}, 0.1f);
  }
  r.add(prefix + "ln_f.weight", {h}, 0.1f, 1.0f);
  r.add(prefix + "ln_f.bias", {h}, 0.1f);
  return r.tensors;
}

inline std::string gpt2_config_json(const Gpt2Dims& d) {
  return "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"vocab_size\": " +
         std::to_string(d.vocab) + ", \"n_embd\": " + std::to_string(d.hidden) +
         ", \"n_layer\": " + std::to_string(d.layers) + ", \"n_head\": " + std::to_string(d.heads) +
         ", \"n_positions\": " + std::to_string(d.positions) + ", \"n_ctx\": " + std::to_string(d.positions) +
         ", \"n_inner\": null, \"layer_norm_epsilon\": 1e-05, \"activation_function\": \"gelu_new\", "
         "\"bos_token_id\": 50256, \"eos_token_id\": 50256}";
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

// A Hugging Face folder: config.json + model.safetensors (tensors cast to `dtype`).
inline void write_hf_folder(const std::string& dir, const std::string& config_json,
                            const std::vector<formats::NamedTensor>& tensors, DType dtype = DType::F32) {
  std::filesystem::create_directories(dir);
  write_text(dir + "/config.json", config_json);
  std::vector<formats::NamedTensor> cast;
  for (const auto& t : tensors) cast.push_back({t.name, dtype == DType::F32 ? t.tensor : t.tensor.cast(dtype)});
  formats::write_safetensors(dir + "/model.safetensors", cast);
}

inline std::vector<int32_t> random_tokens(int64_t n, int32_t vocab, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (auto& t : out) t = r.below(vocab);
  return out;
}

// In-memory models from the random checkpoints above (no files).
inline Model random_llama_model(const LlamaDims& d, uint64_t seed, const std::string& source = "mem") {
  return build_model(ModelConfig::from_hf_json(nlohmann::json::parse(llama_config_json(d)), source),
                     random_llama_tensors(d, seed), source);
}
inline Model random_gpt2_model(const Gpt2Dims& d, uint64_t seed, const std::string& source = "mem") {
  return build_model(ModelConfig::from_hf_json(nlohmann::json::parse(gpt2_config_json(d)), source),
                     random_gpt2_tensors(d, seed), source);
}

// The default Llama dims cut to two layers: the runtime and training tests'
// model (two layers show what passes between blocks, and stay fast).
inline Model two_layer_llama_model(uint64_t seed) {
  LlamaDims d;
  d.layers = 2;
  return random_llama_model(d, seed);
}

}  // namespace qf::model::testing
