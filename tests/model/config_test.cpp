#include "model/config.h"

#include <gtest/gtest.h>

#include "formats/llama2c.h"
#include "test_models.h"

namespace qf::model {
namespace {

using testing::expect_error;
using nlohmann::json;

ModelConfig parse(const std::string& text) { return ModelConfig::from_hf_json(json::parse(text), "config.json"); }

TEST(ModelConfig, LlamaWithGqaBiasAndExplicitHeadDim) {
  testing::LlamaDims d;
  const ModelConfig c = parse(testing::llama_config_json(d));
  EXPECT_EQ(c.arch, Architecture::Llama);
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.vocab_size, 101);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 96);
  EXPECT_EQ(c.n_layers, 3);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.q_dim(), 64);
  EXPECT_EQ(c.kv_dim(), 32);
  EXPECT_EQ(c.max_positions, 128);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 5000.0f);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_TRUE(c.rope_scaling.is_null());
}

TEST(ModelConfig, LlamaDefaults) {
  const ModelConfig c = parse(R"({"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096,
      "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32})");
  EXPECT_EQ(c.n_kv_heads, 32);   // no GQA
  EXPECT_EQ(c.head_dim, 128);    // hidden / heads
  EXPECT_EQ(c.max_positions, 2048);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.eos_token_id, -1);
}

TEST(ModelConfig, Qwen2HasAttentionBiasByDefault) {
  const ModelConfig c = parse(R"({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
      "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
      "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": true, "use_sliding_window": false,
      "sliding_window": 32768, "max_window_layers": 21, "max_position_embeddings": 32768,
      "bos_token_id": 151643, "eos_token_id": 151643})");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window is false
}

TEST(ModelConfig, MistralSlidingWindowAndEosList) {
  const ModelConfig c = parse(R"({"model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096,
      "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
      "sliding_window": 4096, "head_dim": null, "bos_token_id": 1, "eos_token_id": [2, 32000]})");
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.max_positions, 131072);
}

TEST(ModelConfig, Gpt2) {
  testing::Gpt2Dims d;
  const ModelConfig c = parse(testing::gpt2_config_json(d));
  EXPECT_EQ(c.arch, Architecture::GPT2);
  EXPECT_EQ(c.vocab_size, 97);
  EXPECT_EQ(c.hidden_size, 48);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 12);
  EXPECT_EQ(c.intermediate_size, 192);  // n_inner null -> 4 * n_embd
  EXPECT_EQ(c.max_positions, 64);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);

  // n_ctx alone also gives the context; the real gpt2 config has both.
  const ModelConfig old = parse(R"({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12,
      "n_head": 12, "n_ctx": 1024})");
  EXPECT_EQ(old.max_positions, 1024);
  EXPECT_EQ(old.intermediate_size, 3072);
}

TEST(ModelConfig, RoundTripsThroughHfJson) {
  testing::LlamaDims d;
  for (const char* type : {"llama", "mistral", "qwen2"}) {
    ModelConfig c = parse(testing::llama_config_json(d, type));
    if (std::string(type) == "mistral") c.sliding_window = 16;
    const json j = c.to_hf_json();
    EXPECT_EQ(j.at("model_type"), type);
    EXPECT_EQ(ModelConfig::from_hf_json(j, "round trip"), c) << j.dump();
  }
  const ModelConfig g = parse(testing::gpt2_config_json(testing::Gpt2Dims{}));
  const json jg = g.to_hf_json();
  EXPECT_EQ(jg.at("architectures")[0], "GPT2LMHeadModel");
  EXPECT_EQ(ModelConfig::from_hf_json(jg, "round trip"), g) << jg.dump();
  // Floats are written as their shortest decimal.
  EXPECT_EQ(jg.at("layer_norm_epsilon").dump(), "1e-05");
}

TEST(ModelConfig, RopeScalingIsKept) {
  const ModelConfig c = parse(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192}})");
  EXPECT_EQ(c.rope_scaling.at("rope_type"), "llama3");
  EXPECT_EQ(ModelConfig::from_hf_json(c.to_hf_json(), "x").rope_scaling, c.rope_scaling);
}

TEST(ModelConfig, RopeScalingThatCannotBeComputedIsRefused) {
  const std::string base = R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": )";
  auto config = [&](const std::string& rope) { return [&base, rope] { parse(base + rope + "}"); }; };
  expect_error(config(R"({"rope_type": "mrope", "factor": 2.0})"), {"mrope", "not supported", "llama3"});
  expect_error(config(R"({"rope_type": "llama3", "factor": 8.0})"), {"llama3", "low_freq_factor"});
  expect_error(config(R"({"rope_type": "linear"})"), {"linear", "factor"});
  expect_error(config(R"({"type": "dynamic", "factor": -2})"), {"dynamic", "factor"});
  expect_error(config(R"("linear")"), {"rope_scaling", "object"});
}

TEST(ModelConfig, TransformersFiveRopeParametersAreRead) {
  const ModelConfig c = parse(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
      "rope_parameters": {"rope_type": "yarn", "rope_theta": 5e5, "factor": 4.0,
                          "original_max_position_embeddings": 512}})");
  EXPECT_FLOAT_EQ(c.rope_theta, 5e5f);
  EXPECT_EQ(c.rope_scaling.at("rope_type"), "yarn");
  EXPECT_FALSE(c.rope_scaling.contains("rope_theta"));
  EXPECT_EQ(ModelConfig::from_hf_json(c.to_hf_json(), "x"), c);
}

TEST(ModelConfig, FromLlama2c) {
  formats::Llama2cConfig l;
  l.dim = 64;
  l.hidden_dim = 172;
  l.n_layers = 5;
  l.n_heads = 8;
  l.n_kv_heads = 4;
  l.vocab_size = 512;
  l.seq_len = 512;
  const ModelConfig c = ModelConfig::from_llama2c(l);
  EXPECT_EQ(c.arch, Architecture::Llama);
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_positions, 512);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  l.shared_classifier = false;
  EXPECT_FALSE(ModelConfig::from_llama2c(l).tie_embeddings);
}

TEST(ModelConfig, UnknownModelTypeIsNamed) {
  expect_error([] { parse(R"({"model_type": "falcon", "vocab_size": 10})"); },
               {"config.json", "unsupported model_type \"falcon\"", "llama"});
  expect_error([] { parse(R"({"vocab_size": 10})"); }, {"config.json", "missing \"model_type\""});
  expect_error([] { parse(R"({"model_type": 3})"); }, {"\"model_type\" must be a string"});
  expect_error([] { parse("[1, 2]"); }, {"must be a JSON object"});
}

TEST(ModelConfig, MissingAndBadFields) {
  expect_error([] { parse(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 2})"); },
               {"config.json", "missing \"intermediate_size\""});
  expect_error([] { parse(R"({"model_type": "gpt2", "vocab_size": 10, "n_layer": 1, "n_head": 2})"); },
               {"missing \"n_embd\""});
  expect_error([] { parse(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": "8",
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2})"); },
               {"\"hidden_size\" must be an integer", "\"8\""});
  expect_error([] { parse(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3})"); },
               {"key/value heads 3 does not divide", "4"});
  expect_error([] { parse(R"({"model_type": "llama", "vocab_size": 0, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2})"); },
               {"vocab_size must be positive, got 0"});
  expect_error([] { parse(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 6,
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2})"); },
               {"head_dim 3 must be even"});
  expect_error([] { parse(R"({"model_type": "gpt2", "vocab_size": 10, "n_embd": 10, "n_layer": 1, "n_head": 3})"); },
               {"n_head 3 does not divide n_embd 10"});
  expect_error([] { parse(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "hidden_act": "gelu"})"); },
               {"hidden_act", "gelu", "not supported"});
  expect_error([] { parse(R"({"model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_layer": 1, "n_head": 2,
      "activation_function": "relu"})"); },
               {"activation_function", "relu"});
  expect_error([] { parse(R"({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "use_sliding_window": true})"); },
               {"use_sliding_window"});
}

TEST(ModelConfig, ValidateNamesTheSource) {
  ModelConfig c;
  expect_error([&] { c.validate("my.gguf"); }, {"my.gguf: ", "must be positive"});
  c = parse(testing::gpt2_config_json(testing::Gpt2Dims{}));
  c.n_kv_heads = 2;
  expect_error([&] { c.validate("x"); }, {"x: ", "grouped-query"});
}

}  // namespace
}  // namespace qf::model
