#include "model/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/float_formats.h"
#include "formats/llama2c.h"
#include "test_models.h"

namespace qf::model {
namespace {

using formats::NamedTensor;
using testing::expect_error;
using testing::TempDir;

ModelConfig llama_config(const testing::LlamaDims& d, const std::string& type = "llama") {
  return ModelConfig::from_hf_json(nlohmann::json::parse(testing::llama_config_json(d, type)), "config.json");
}

ModelConfig gpt2_config(const testing::Gpt2Dims& d) {
  return ModelConfig::from_hf_json(nlohmann::json::parse(testing::gpt2_config_json(d)), "config.json");
}

std::vector<NamedTensor> without(std::vector<NamedTensor> v, const std::string& name) {
  std::erase_if(v, [&](const NamedTensor& t) { return t.name == name; });
  return v;
}

const Tensor& find(const std::vector<NamedTensor>& v, const std::string& name) {
  for (const auto& t : v)
    if (t.name == name) return t.tensor;
  throw std::runtime_error("no tensor " + name);
}

bool same_values(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_f32_vector() == b.to_f32_vector();
}

TEST(BuildModel, LlamaRolesAndShapes) {
  testing::LlamaDims d;
  const auto tensors = testing::random_llama_tensors(d, 1);
  const Model m = build_model(llama_config(d), tensors, "mem");
  ASSERT_EQ(m.layers.size(), 3u);
  EXPECT_EQ(m.embed.shape(), (Shape{101, 64}));
  EXPECT_EQ(m.layers[1].wq.shape(), (Shape{64, 64}));
  EXPECT_EQ(m.layers[1].wk.shape(), (Shape{32, 64}));
  EXPECT_EQ(m.layers[1].bk.shape(), (Shape{32}));
  EXPECT_EQ(m.layers[2].w_down.shape(), (Shape{64, 96}));
  EXPECT_TRUE(m.layers[0].w_qkv.empty());
  // Shared, not copied: same bytes as the input tensors.
  EXPECT_EQ(m.layers[2].wv.bytes(), find(tensors, "model.layers.2.self_attn.v_proj.weight").bytes());
  EXPECT_EQ(m.lm_head.bytes(), find(tensors, "lm_head.weight").bytes());
  // named_tensors() gives back exactly the input set.
  const auto named = m.named_tensors();
  ASSERT_EQ(named.size(), tensors.size());
  for (const auto& t : named) EXPECT_EQ(t.tensor.bytes(), find(tensors, t.name).bytes()) << t.name;
  int64_t params = 0;
  for (const auto& t : tensors) params += t.tensor.numel();
  EXPECT_EQ(m.parameter_count(), params);
}

TEST(BuildModel, TiedLlamaSharesTheEmbedding) {
  testing::LlamaDims d;
  d.tied = true;
  d.bias = false;
  const auto tensors = testing::random_llama_tensors(d, 2);
  ModelConfig c = llama_config(d);
  const Model m = build_model(c, tensors, "mem");
  EXPECT_EQ(m.lm_head.bytes(), m.embed.bytes());
  EXPECT_TRUE(m.layers[0].bq.empty());
  const auto named = m.named_tensors();
  EXPECT_TRUE(std::none_of(named.begin(), named.end(), [](const NamedTensor& t) { return t.name == "lm_head.weight"; }));
  // A saved copy of the tied head is ignored, as transformers does.
  auto with_head = tensors;
  with_head.push_back({"lm_head.weight", Tensor::zeros(DType::F32, {101, 64})});
  EXPECT_EQ(build_model(c, with_head, "mem").lm_head.bytes(), find(with_head, "model.embed_tokens.weight").bytes());
}

TEST(BuildModel, MissingTensorIsNamed) {
  testing::LlamaDims d;
  const auto tensors = without(testing::random_llama_tensors(d, 3), "model.layers.1.mlp.up_proj.weight");
  expect_error([&] { build_model(llama_config(d), tensors, "ckpt/model.safetensors"); },
               {"ckpt/model.safetensors: ", "missing tensor \"model.layers.1.mlp.up_proj.weight\""});
  // attention_bias requires the biases.
  const auto no_bias = without(testing::random_llama_tensors(d, 3), "model.layers.0.self_attn.k_proj.bias");
  expect_error([&] { build_model(llama_config(d), no_bias, "x"); },
               {"missing tensor \"model.layers.0.self_attn.k_proj.bias\""});
  // Untied without a head.
  const auto no_head = without(testing::random_llama_tensors(d, 3), "lm_head.weight");
  expect_error([&] { build_model(llama_config(d), no_head, "x"); }, {"missing tensor \"lm_head.weight\""});
}

TEST(BuildModel, WrongShapeSaysExpectedAndGot) {
  testing::LlamaDims d;
  auto tensors = testing::random_llama_tensors(d, 4);
  for (auto& t : tensors)
    if (t.name == "model.layers.2.self_attn.k_proj.weight") t.tensor = Tensor::zeros(DType::F32, {64, 64});
  expect_error([&] { build_model(llama_config(d), tensors, "ckpt"); },
               {"ckpt: ", "\"model.layers.2.self_attn.k_proj.weight\"", "shape [64, 64]", "expected [32, 64]"});
}

TEST(BuildModel, UnexpectedDuplicateAndNonFloatTensors) {
  testing::LlamaDims d;
  d.bias = false;
  auto extra = testing::random_llama_tensors(d, 5);
  extra.push_back({"model.layers.0.self_attn.q_proj.bias", Tensor::zeros(DType::F32, {64})});
  expect_error([&] { build_model(llama_config(d), extra, "ckpt"); },
               {"1 unexpected tensor", "\"model.layers.0.self_attn.q_proj.bias\"", "llama"});

  auto dup = testing::random_llama_tensors(d, 5);
  dup.push_back(dup.front());
  expect_error([&] { build_model(llama_config(d), dup, "ckpt"); }, {"\"model.embed_tokens.weight\"", "more than once"});

  auto ints = testing::random_llama_tensors(d, 5);
  for (auto& t : ints)
    if (t.name == "model.norm.weight") t.tensor = Tensor::zeros(DType::I32, {64});
  expect_error([&] { build_model(llama_config(d), ints, "ckpt"); },
               {"\"model.norm.weight\"", "dtype I32", "float"});

  // Rotary buffers of old exports are ignored.
  auto inv = testing::random_llama_tensors(d, 5);
  inv.push_back({"model.layers.1.self_attn.rotary_emb.inv_freq", Tensor::zeros(DType::F32, {8})});
  EXPECT_NO_THROW(build_model(llama_config(d), inv, "ckpt"));
}

TEST(BuildModel, Gpt2WithAndWithoutTransformerPrefix) {
  testing::Gpt2Dims d;
  for (const std::string prefix : {"", "transformer."}) {
    auto tensors = testing::random_gpt2_tensors(d, 6, prefix);
    // The causal-mask buffers older checkpoints carry are ignored.
    tensors.push_back({prefix + "h.0.attn.bias", Tensor::zeros(DType::F32, {1, 1, 64, 64})});
    tensors.push_back({prefix + "h.1.attn.masked_bias", Tensor::zeros(DType::F32, {})});
    const Model m = build_model(gpt2_config(d), tensors, "gpt2");
    EXPECT_EQ(m.layers[1].w_qkv.shape(), (Shape{48, 144})) << prefix;
    EXPECT_EQ(m.layers[1].w_up.shape(), (Shape{48, 192}));
    EXPECT_EQ(m.layers[1].w_down.shape(), (Shape{192, 48}));
    EXPECT_EQ(m.pos_embed.shape(), (Shape{64, 48}));
    EXPECT_EQ(m.lm_head.bytes(), m.embed.bytes());
    EXPECT_EQ(m.layers[0].wo.bytes(), find(tensors, prefix + "h.0.attn.c_proj.weight").bytes());
    const auto named = m.named_tensors();
    EXPECT_EQ(named.size(), tensors.size() - 2);
    EXPECT_EQ(named.front().name, "wte.weight");
  }
  // GPT2LMHeadModel-style: prefixed body, bare lm_head (ignored when tied).
  auto tensors = testing::random_gpt2_tensors(d, 6, "transformer.");
  tensors.push_back({"lm_head.weight", Tensor::zeros(DType::F32, {97, 48})});
  EXPECT_NO_THROW(build_model(gpt2_config(d), tensors, "gpt2"));
  // Untied: the head is used.
  ModelConfig untied = gpt2_config(d);
  untied.tie_embeddings = false;
  const Model m = build_model(untied, tensors, "gpt2");
  EXPECT_EQ(m.lm_head.bytes(), find(tensors, "lm_head.weight").bytes());
  expect_error([&] { build_model(untied, testing::random_gpt2_tensors(d, 6), "gpt2"); },
               {"missing tensor \"lm_head.weight\""});
  // Errors name the prefixed tensor.
  expect_error([&] { build_model(gpt2_config(d), without(testing::random_gpt2_tensors(d, 6, "transformer."),
                                                         "transformer.h.1.mlp.c_fc.bias"), "gpt2"); },
               {"missing tensor \"transformer.h.1.mlp.c_fc.bias\""});
}

TEST(LoadModel, HfFolderF32IsZeroCopy) {
  TempDir dir;
  testing::LlamaDims d;
  const auto tensors = testing::random_llama_tensors(d, 7);
  testing::write_hf_folder(dir.str(), testing::llama_config_json(d), tensors);
  const Model m = load_model(dir.str());
  EXPECT_EQ(m.config.n_kv_heads, 2);
  for (const auto& t : m.named_tensors()) {
    EXPECT_EQ(t.tensor.dtype(), DType::F32);
    EXPECT_FALSE(t.tensor.writable()) << t.name << " was copied instead of viewing the mapped file";
    EXPECT_TRUE(same_values(t.tensor, find(tensors, t.name))) << t.name;
  }
  // The safetensors file itself (config.json beside it) works too.
  EXPECT_EQ(load_model(dir.file("model.safetensors")).config, m.config);
}

TEST(LoadModel, Bf16AndF16AreConvertedToF32) {
  testing::LlamaDims d;
  const auto tensors = testing::random_llama_tensors(d, 8);
  for (DType dt : {DType::BF16, DType::F16}) {
    TempDir dir;
    testing::write_hf_folder(dir.str(), testing::llama_config_json(d), tensors, dt);
    const Model m = load_model(dir.str());
    const Tensor& w = m.layers[1].w_gate;
    EXPECT_EQ(w.dtype(), DType::F32);
    EXPECT_TRUE(w.writable());
    const auto expect = find(tensors, "model.layers.1.mlp.gate_proj.weight").cast(dt).to_f32_vector();
    EXPECT_EQ(w.to_f32_vector(), expect);
  }
}

TEST(LoadModel, ShardedFolder) {
  TempDir dir;
  testing::Gpt2Dims d;
  const auto tensors = testing::random_gpt2_tensors(d, 9);
  testing::write_text(dir.file("config.json"), testing::gpt2_config_json(d));
  const size_t half = tensors.size() / 2;
  const std::vector<NamedTensor> a(tensors.begin(), tensors.begin() + static_cast<std::ptrdiff_t>(half));
  const std::vector<NamedTensor> b(tensors.begin() + static_cast<std::ptrdiff_t>(half), tensors.end());
  formats::write_safetensors(dir.file("model-00001-of-00002.safetensors"), a);
  formats::write_safetensors(dir.file("model-00002-of-00002.safetensors"), b);
  nlohmann::json index;
  index["metadata"] = nlohmann::json::object();
  for (const auto& t : a) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : b) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  testing::write_text(dir.file("model.safetensors.index.json"), index.dump());
  const Model m = load_model(dir.str());
  EXPECT_EQ(m.config.arch, Architecture::GPT2);
  for (const auto& t : m.named_tensors()) EXPECT_TRUE(same_values(t.tensor, find(tensors, t.name))) << t.name;
}

TEST(LoadModel, Errors) {
  TempDir dir;
  expect_error([&] { load_model(dir.file("nope")); }, {"nope", "no such file"});
  testing::Gpt2Dims d;
  formats::write_safetensors(dir.file("model.safetensors"), testing::random_gpt2_tensors(d, 10));
  expect_error([&] { load_model(dir.str()); }, {"no config.json"});
  testing::write_text(dir.file("config.json"), R"({"model_type": "bert", "vocab_size": 5})");
  expect_error([&] { load_model(dir.str()); }, {"config.json", "unsupported model_type \"bert\""});
  testing::write_text(dir.file("config.json"), R"({"model_type": "gpt2", "model_type": "gpt2"})");
  expect_error([&] { load_model(dir.str()); }, {"config.json", "duplicate"});
  testing::LlamaDims ld;
  testing::write_text(dir.file("config.json"), testing::llama_config_json(ld));
  expect_error([&] { load_model(dir.str()); }, {"model.safetensors", "missing tensor \"model.embed_tokens.weight\""});
}

TEST(RopeLayout, PermutationMovesRowsWithinHeads) {
  // 2 heads of 4 rows, 3 columns; row r holds r in every column.
  std::vector<float> v;
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 3; ++c) v.push_back(static_cast<float>(r * 10 + c));
  const Tensor w = Tensor::from_f32(v, {8, 3});
  const Tensor h = interleaved_to_half_rope_rows(w, 2);
  // Interleaved rows per head (0, 1, 2, 3) = pairs (0,1), (2,3) ->
  // rotate_half rows (0, 2, 1, 3): first halves then second halves.
  const int expected_rows[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(h.data<float>()[r * 3 + c], expected_rows[r] * 10 + c) << r;
  EXPECT_TRUE(same_values(half_to_interleaved_rope_rows(h, 2), w));
  // A bias vector is permuted the same way.
  const Tensor b = Tensor::from_f32(std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}, {8});
  EXPECT_EQ(interleaved_to_half_rope_rows(b, 2).to_f32_vector(), (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
  expect_error([&] { interleaved_to_half_rope_rows(w, 3); }, {"8 rows", "3 heads"});
}

TEST(RopeLayout, PermutedRowsGiveTheSameRotationUnderRotateHalf) {
  // Interleaved RoPE on q = W x equals rotate_half RoPE on q' = W' x when
  // W' is the permuted W, up to the same permutation of the outputs.
  testing::Rng rng(11);
  const int64_t heads = 3, hd = 8, in = 5, pos = 7;
  std::vector<float> wv(static_cast<size_t>(heads * hd * in)), x(static_cast<size_t>(in));
  for (auto& v : wv) v = rng.normal(1.0f);
  for (auto& v : x) v = rng.normal(1.0f);
  const Tensor w = Tensor::from_f32(wv, {heads * hd, in});
  const Tensor wp = interleaved_to_half_rope_rows(w, heads);
  auto matvec = [&](const Tensor& m) {
    std::vector<double> out(static_cast<size_t>(heads * hd), 0.0);
    for (int64_t r = 0; r < heads * hd; ++r)
      for (int64_t c = 0; c < in; ++c) out[r] += m.data<float>()[r * in + c] * x[c];
    return out;
  };
  std::vector<double> a = matvec(w), b = matvec(wp);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double angle = pos * std::pow(10000.0, -2.0 * i / hd);
      double& a0 = a[h * hd + 2 * i];  // interleaved pair
      double& a1 = a[h * hd + 2 * i + 1];
      double& b0 = b[h * hd + i];  // rotate_half pair
      double& b1 = b[h * hd + i + hd / 2];
      const double ra0 = a0 * std::cos(angle) - a1 * std::sin(angle), ra1 = a0 * std::sin(angle) + a1 * std::cos(angle);
      const double rb0 = b0 * std::cos(angle) - b1 * std::sin(angle), rb1 = b0 * std::sin(angle) + b1 * std::cos(angle);
      EXPECT_NEAR(ra0, rb0, 1e-9);
      EXPECT_NEAR(ra1, rb1, 1e-9);
    }
  }
}

std::string stories_path() { return std::string(QF_SHARED_DATA) + "/stories260K/stories260K.bin"; }

TEST(LoadModel, Llama2cQkArePermutedTheRestIsMapped) {
  if (!std::filesystem::exists(stories_path())) GTEST_SKIP() << stories_path() << " is absent";
  const Model m = load_model(stories_path());
  const formats::Llama2cModel raw = formats::read_llama2c(stories_path());
  EXPECT_EQ(m.config, ModelConfig::from_llama2c(raw.config));
  EXPECT_EQ(m.source, stories_path());
  for (const auto& t : m.named_tensors()) {
    const Tensor& r = find(raw.tensors, t.name);
    const bool q = t.name.ends_with("q_proj.weight"), k = t.name.ends_with("k_proj.weight");
    if (q || k) {
      EXPECT_TRUE(same_values(t.tensor, interleaved_to_half_rope_rows(r, q ? 8 : 4))) << t.name;
      EXPECT_FALSE(same_values(t.tensor, r)) << t.name;
    } else {
      EXPECT_FALSE(t.tensor.writable()) << t.name << " was copied instead of viewing the mapped file";
      EXPECT_TRUE(same_values(t.tensor, r)) << t.name;
    }
  }
  // The folder holding the .bin (and tok512.bin) loads the same model.
  const Model f = load_model(std::filesystem::path(stories_path()).parent_path().string());
  EXPECT_EQ(f.config, m.config);
  EXPECT_TRUE(same_values(f.layers[3].wk, m.layers[3].wk));
}

}  // namespace
}  // namespace qf::model
