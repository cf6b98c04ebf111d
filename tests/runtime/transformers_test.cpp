// transformers (PyTorch, CPU) as the judge of every architecture: a tiny
// random-weight model of each family is built from a config dict by
// transformers_reference.py (never the hub), saved with save_pretrained, and
// qforge's fp32 logits on the saved folder must match transformers' on the
// same token ids. The configs reach past what a short prompt shows: prompts
// longer than the sliding window, positions past the original context of a
// scaled RoPE, head_dim != hidden / heads, tied heads, soft-capping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../model/test_models.h"
#include "model/model.h"
#include "numpy_python.h"
#include "transformers_model.h"
#include "runtime/runtime.h"

namespace qf::runtime {
namespace {

using nlohmann::json;

struct Case {
  std::string name;
  json config;      // AutoConfig.for_model kwargs, with "model_type"
  int64_t tokens;   // prompt length
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Mean over positions of KL(transformers || qforge), in double.
double kld_of(const std::vector<float>& want, const Tensor& got, int64_t vocab) {
  const int64_t T = got.dim(0);
  double total = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float* a = want.data() + t * vocab;
    const float* b = got.data<float>() + t * vocab;
    const double ma = *std::max_element(a, a + vocab), mb = *std::max_element(b, b + vocab);
    double za = 0, zb = 0;
    for (int64_t v = 0; v < vocab; ++v) za += std::exp(a[v] - ma), zb += std::exp(b[v] - mb);
    for (int64_t v = 0; v < vocab; ++v) {
      const double la = a[v] - ma - std::log(za), lb = b[v] - mb - std::log(zb);
      total += std::exp(la) * (la - lb);
    }
  }
  return total / static_cast<double>(T);
}

// The shapes every case shares; each case adds or overrides keys.
json decoder(const std::string& model_type, json extra) {
  json c = {{"model_type", model_type}, {"vocab_size", 96},          {"hidden_size", 64},
            {"intermediate_size", 96},  {"num_hidden_layers", 2},    {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false}};
  if (!extra.is_null()) c.update(extra);
  return c;
}

// head_dim 16: eight factors per set, none of them equal.
json phi3_longrope() {
  json short_factor = json::array(), long_factor = json::array();
  for (int i = 0; i < 8; ++i) {
    short_factor.push_back(1.0 + 0.05 * i);
    long_factor.push_back(1.5 + 0.9 * i);
  }
  return {{"pad_token_id", nullptr},
          {"original_max_position_embeddings", 16},
          {"rope_parameters",
           {{"rope_type", "longrope"}, {"rope_theta", 10000.0}, {"short_factor", short_factor},
            {"long_factor", long_factor}}}};
}

std::vector<Case> cases() {
  return {
      {"llama", decoder("llama", {}), 20},
      {"llama_tied_head_dim", decoder("llama", {{"tie_word_embeddings", true}, {"head_dim", 24}}), 20},
      {"llama_bias", decoder("llama", {{"attention_bias", true}, {"mlp_bias", true}}), 12},
      // Llama 3.x: positions 0..39 go past the original 16.
      {"llama3_rope", decoder("llama", {{"rope_parameters", {{"rope_type", "llama3"}, {"rope_theta", 500000.0},
                                                             {"factor", 8.0}, {"low_freq_factor", 1.0},
                                                             {"high_freq_factor", 4.0},
                                                             {"original_max_position_embeddings", 16}}}}),
       40},
      {"linear_rope",
       decoder("llama", {{"rope_parameters", {{"rope_type", "linear"}, {"rope_theta", 10000.0}, {"factor", 4.0}}}}),
       30},
      // Dynamic NTK grows the base once the prompt outgrows max_position_embeddings.
      {"dynamic_rope", decoder("llama", {{"max_position_embeddings", 16},
                                         {"rope_parameters",
                                          {{"rope_type", "dynamic"}, {"rope_theta", 10000.0}, {"factor", 2.0}}}}),
       40},
      {"yarn_rope", decoder("llama", {{"rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 10000.0},
                                                           {"factor", 4.0},
                                                           {"original_max_position_embeddings", 16}}}}),
       40},
      {"mistral_sliding", decoder("mistral", {{"sliding_window", 8}, {"head_dim", 16}}), 24},
      {"qwen2", decoder("qwen2", {{"use_sliding_window", false}}), 20},
      {"qwen3", decoder("qwen3", {{"head_dim", 32}, {"tie_word_embeddings", true}}), 20},
      // Gemma 3: local layers (window 8, base 10000) around a global one with
      // linearly scaled RoPE; query_pre_attn_scalar != head_dim; final soft-cap
      // (the attention soft-cap in the config is ignored by Gemma 3, here too).
      {"gemma3",
       decoder("gemma3_text",
               {{"num_hidden_layers", 3},
                {"head_dim", 16},
                {"layer_types", {"sliding_attention", "full_attention", "sliding_attention"}},
                {"sliding_window", 8},
                {"query_pre_attn_scalar", 24},
                {"rope_parameters",
                 {{"full_attention", {{"rope_type", "linear"}, {"rope_theta", 1000000.0}, {"factor", 2.0}}},
                  {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}}},
                {"final_logit_softcapping", 5.0},
                {"attn_logit_softcapping", 3.0},
                {"tie_word_embeddings", true}}),
       24},
      // Phi-3: fused qkv_proj / gate_up_proj (split at load), a window on every layer.
      {"phi3_sliding", decoder("phi3", {{"sliding_window", 8}, {"pad_token_id", nullptr}}), 24},
      // Phi-3 128k style longrope: the short factors up to the original 16
      // positions, the long ones (and the attention factor) past them.
      {"phi3_longrope_short", decoder("phi3", phi3_longrope()), 16},
      {"phi3_longrope_long", decoder("phi3", phi3_longrope()), 40},
      {"gpt2", json{{"model_type", "gpt2"}, {"vocab_size", 96}, {"n_embd", 64}, {"n_layer", 2}, {"n_head", 4},
                    {"n_positions", 64}, {"tie_word_embeddings", true}},
       20},
  };
}

class TransformersReference : public ::testing::TestWithParam<Case> {};

TEST_P(TransformersReference, LogitsMatch) {
  const std::string& python = test::transformers_python();
  if (python.empty())
    GTEST_SKIP() << "no python with torch and transformers (scripts/python-env.sh makes build/venv)";
  const Case& c = GetParam();
  model::testing::TempDir dir;
  std::vector<int32_t> tokens;
  for (int64_t t = 0; t < c.tokens; ++t) tokens.push_back(static_cast<int32_t>((t * 37 + 11) % 96));
  const int64_t vocab = 96;
  const std::string folder = dir.file("model");
  const test::TransformersModel ref = test::make_transformers_model(c.config, tokens, vocab, folder);
  ASSERT_TRUE(ref.error.empty()) << ref.error;
  const std::vector<float>& want = ref.logits;

  const model::Model m = model::load_model(folder);
  Runtime rt(m, {.n_threads = 2, .context = c.tokens});
  const Tensor got = rt.forward(tokens);
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  // Largest deviation relative to the largest logit, per position so that a
  // late position (past a window or the original context) cannot hide.
  double worst = 0;
  int64_t worst_t = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    double diff = 0, scale = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const size_t i = t * static_cast<size_t>(vocab) + static_cast<size_t>(v);
      diff = std::max(diff, std::fabs(static_cast<double>(got.data<float>()[i]) - want[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
    }
    if (diff / scale > worst) worst = diff / scale, worst_t = static_cast<int64_t>(t);
  }
  std::cout << c.name << ": max |logit difference| / max |logit| = " << worst << " (position " << worst_t
            << "), mean KLD " << kld_of(want, got, vocab) << "\n";
  EXPECT_LT(worst, 1e-5) << c.name << ": worst at position " << worst_t;
  // The decode path (one token at a time on the KV cache) agrees with the prompt pass.
  rt.reset();
  Tensor last;
  for (int32_t id : tokens) last = rt.forward(std::span(&id, 1), Logits::Last);
  double diff = 0;
  for (int64_t v = 0; v < vocab; ++v)
    diff = std::max(diff, std::fabs(static_cast<double>(last.data<float>()[v]) -
                                    got.data<float>()[(tokens.size() - 1) * static_cast<size_t>(vocab) + v]));
  // Not for dynamic NTK: like transformers, each step rescales only the new
  // position, so cached keys keep the base of the step that made them.
  // Nor for longrope past the original context, for the same reason: the
  // prompt pass uses the long factors everywhere, decode only from there on.
  if (c.name != "dynamic_rope" && c.name != "phi3_longrope_long") {
    EXPECT_LT(diff, 1e-4) << c.name << ": decode vs prompt";
  }
}

// Real trained weights (scripts/fetch-models.sh): each GGUF as fetched,
// dequantized and written by `qforge convert` as a Hugging Face folder, must
// load in transformers and give qforge's logits on the same tokens. This
// checks our Llama and Gemma 3 blocks on real weights (262k vocabulary,
// head_dim 256, 18 layers with five local layers per global one) and the
// config.json / tensor names we write for them.
TEST(TransformersReal, GgufConvertedToHfFoldersAgree) {
  if (test::transformers_python().empty())
    GTEST_SKIP() << "no python with torch and transformers (scripts/python-env.sh makes build/venv)";
  const char* env = std::getenv("QF_MODEL_CACHE");
  const std::filesystem::path cache =
      env && *env ? std::filesystem::path(env) : std::filesystem::path(QF_SOURCE_DIR) / "build" / "models";
  model::testing::TempDir dir;
  for (const char* name : {"smollm2-135m-instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"}) {
    const std::filesystem::path file = cache / name;
    if (!std::filesystem::exists(file)) GTEST_SKIP() << file << " is absent (bash scripts/fetch-models.sh fetches it)";
    const std::string folder = dir.file(name) + ".hf";
    const auto [status, output] =
        test::run_shell(std::string(QF_QFORGE_BIN) + " convert '" + file.string() + "' '" + folder + "' 2>&1");
    ASSERT_EQ(status, 0) << output;
    const model::Model m = model::load_model(folder);
    std::vector<int32_t> tokens = {m.config.bos_token_id >= 0 ? m.config.bos_token_id : 1};
    for (int32_t t = 1; t < 48; ++t)
      tokens.push_back(static_cast<int32_t>(10 + (t * 7919) % (m.config.vocab_size - 10)));
    const test::TransformersModel ref = test::transformers_logits(folder, tokens, m.config.vocab_size);
    ASSERT_TRUE(ref.error.empty()) << ref.error;
    Runtime rt(m, {.n_threads = 2, .context = static_cast<int64_t>(tokens.size())});
    const Tensor got = rt.forward(tokens);
    double diff = 0, scale = 0;
    for (size_t i = 0; i < ref.logits.size(); ++i) {
      diff = std::max(diff, std::fabs(static_cast<double>(got.data<float>()[i]) - ref.logits[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(ref.logits[i])));
    }
    std::cout << name << ": max |logit difference| / max |logit| = " << diff / scale << ", mean KLD "
              << kld_of(ref.logits, got, m.config.vocab_size) << "\n";
    EXPECT_LT(diff / scale, 1e-5) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TransformersReference, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& param) { return param.param.name; });

}  // namespace
}  // namespace qf::runtime
