// Quantized GGUF models: llama.cpp's mixture rules and fallbacks, and a
// written file reading back as exactly the in-memory quantized weights
// (block rows permuted with llama.cpp's q/k permutation and back).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/gguf_grid.h"
#include "formats/gguf_model.h"
#include "formats/gguf_quants.h"
#include "formats/gguf_recipe.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;
using model::Architecture;
using model::ModelConfig;

GgmlType type_of(const GgufRecipe& r, const std::string& name, const Shape& shape, GgufRecipeContext ctx,
                 std::string* notice = nullptr) {
  const auto c = gguf_recipe_type(r, name, shape, ctx);
  if (!c) return GgmlType::F32;
  if (notice) *notice = c->notice;
  return c->type;
}

TEST(GgufRecipe, Q4KMFollowsLlamaCpp) {
  const GgufRecipe r = parse_gguf_recipe("Q4_K_M");
  EXPECT_EQ(r.file_type, GgufFileType::Q4_K_M);
  EXPECT_EQ(static_cast<uint32_t>(r.file_type), 15u);
  const GgufRecipeContext ctx{32, 1, false, false};
  // use_more_bits over 32 layers: 0-3, 28-31 and every third from 6.
  std::vector<int> more;
  for (int l = 0; l < 32; ++l)
    if (type_of(r, fmt::format("blk.{}.attn_v.weight", l), {4096, 4096}, ctx) == GgmlType::Q6_K) more.push_back(l);
  EXPECT_EQ(more, (std::vector<int>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}));
  EXPECT_EQ(type_of(r, "blk.5.attn_v.weight", {4096, 4096}, ctx), GgmlType::Q4_K);
  EXPECT_EQ(type_of(r, "blk.6.ffn_down.weight", {4096, 11008}, ctx), GgmlType::Q6_K);
  EXPECT_EQ(type_of(r, "blk.7.ffn_down.weight", {4096, 11008}, ctx), GgmlType::Q4_K);
  EXPECT_EQ(type_of(r, "blk.7.attn_q.weight", {4096, 4096}, ctx), GgmlType::Q4_K);
  EXPECT_EQ(type_of(r, "output.weight", {32000, 4096}, ctx), GgmlType::Q6_K);
  EXPECT_EQ(type_of(r, "token_embd.weight", {32000, 4096}, ctx), GgmlType::Q4_K);
  EXPECT_EQ(type_of(r, "token_embd.weight", {32000, 4096}, {32, 1, true, false}), GgmlType::Q6_K);
  EXPECT_EQ(type_of(r, "blk.0.attn_norm.weight", {4096}, ctx), GgmlType::F32);  // not quantized
  EXPECT_FALSE(gguf_recipe_type(r, "position_embd.weight", {1024, 768}, ctx));
}

TEST(GgufRecipe, OtherMixtures) {
  const GgufRecipeContext ctx{32, 8, false, false};
  EXPECT_EQ(type_of(parse_gguf_recipe("q2_k"), "blk.3.attn_v.weight", {1024, 4096}, ctx), GgmlType::Q4_K);  // GQA 8
  EXPECT_EQ(type_of(parse_gguf_recipe("q2_k"), "blk.3.attn_v.weight", {1024, 4096}, {32, 2, false, false}),
            GgmlType::Q3_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q2_k"), "blk.3.ffn_down.weight", {4096, 11008}, ctx), GgmlType::Q3_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q2_k"), "blk.3.attn_output.weight", {4096, 4096}, ctx), GgmlType::Q3_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q3_k_m"), "blk.1.attn_v.weight", {1024, 4096}, ctx), GgmlType::Q5_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q3_k_m"), "blk.2.attn_v.weight", {1024, 4096}, ctx), GgmlType::Q4_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q3_k_m"), "blk.1.ffn_down.weight", {4096, 11008}, ctx), GgmlType::Q5_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q3_k_m"), "blk.2.ffn_down.weight", {4096, 11008}, ctx), GgmlType::Q4_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q3_k_m"), "blk.2.attn_q.weight", {4096, 4096}, ctx), GgmlType::Q3_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q5_k_m"), "blk.0.ffn_down.weight", {4096, 11008}, ctx), GgmlType::Q6_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q6_k"), "blk.0.ffn_up.weight", {11008, 4096}, ctx), GgmlType::Q6_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q8_0"), "output.weight", {32000, 4096}, ctx), GgmlType::Q8_0);
  EXPECT_EQ(type_of(parse_gguf_recipe("q4_0"), "output.weight", {32000, 4096}, ctx), GgmlType::Q6_K);
  EXPECT_EQ(type_of(parse_gguf_recipe("q4_0"), "blk.0.ffn_down.weight", {4096, 11008}, {32, 1, false, true}),
            GgmlType::Q4_1);  // with importance weights, as llama.cpp
  EXPECT_EQ(type_of(parse_gguf_recipe("q4_0"), "blk.0.ffn_down.weight", {4096, 11008}, ctx), GgmlType::Q4_0);
  expect_error([] { (void)parse_gguf_recipe("q4_k_x"); }, {"unknown GGUF quantization 'q4_k_x'", "q4_k_m", "q8_0"});
}

TEST(GgufRecipe, RowsThatDoNotFitFallBackWithANotice) {
  const GgufRecipeContext ctx{5, 2, true, false};
  std::string notice;
  // stories260K: dim 64, hidden 172.
  EXPECT_EQ(type_of(parse_gguf_recipe("q4_k_m"), "blk.0.attn_q.weight", {64, 64}, ctx, &notice), GgmlType::Q5_0);
  EXPECT_EQ(notice, "blk.0.attn_q.weight: rows of 64 are not a multiple of the 256-value Q4_K block; using Q5_0");
  EXPECT_EQ(type_of(parse_gguf_recipe("q4_k_m"), "blk.1.ffn_down.weight", {64, 172}, ctx, &notice), GgmlType::F16);
  EXPECT_EQ(type_of(parse_gguf_recipe("q6_k"), "blk.1.ffn_up.weight", {172, 64}, ctx, &notice), GgmlType::Q8_0);
  EXPECT_EQ(type_of(parse_gguf_recipe("q3_k_m"), "blk.4.attn_output.weight", {64, 64}, ctx, &notice), GgmlType::Q5_0);
  EXPECT_EQ(type_of(parse_gguf_recipe("q2_k"), "blk.4.attn_q.weight", {64, 64}, ctx, &notice), GgmlType::Q4_0);
  EXPECT_EQ(type_of(parse_gguf_recipe("q8_0"), "blk.1.ffn_down.weight", {64, 172}, ctx, &notice), GgmlType::F16);
  EXPECT_EQ(notice, "blk.1.ffn_down.weight: rows of 172 are not a multiple of the 32-value Q8_0 block; using F16");
  // Tied embeddings take the output's type: Q6_K, which falls back to Q8_0 on 64-wide rows.
  EXPECT_EQ(type_of(parse_gguf_recipe("q4_0"), "token_embd.weight", {512, 64}, ctx, &notice), GgmlType::Q8_0);
  EXPECT_EQ(type_of(parse_gguf_recipe("q4_k_m"), "token_embd.weight", {512, 64}, ctx, &notice), GgmlType::Q8_0);
  EXPECT_TRUE(notice.empty());  // llama.cpp's rule picks Q8_0 directly here
}

// ---------------------------------------------------------------------------
// A small Llama written with a mixture reads back as its in-memory quantization.

ModelConfig small_llama() {
  ModelConfig c;
  c.arch = Architecture::Llama;
  c.model_type = "llama";
  c.vocab_size = 40;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.max_positions = 32;
  c.norm_eps = 1e-5f;
  c.tie_embeddings = false;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

std::vector<NamedTensor> small_llama_tensors(const ModelConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  auto t = [&](Shape shape) {
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (float& x : v) x = dist(rng);
    return Tensor::from_f32(v, shape);
  };
  const int64_t h = c.hidden_size, kv = c.n_kv_heads * c.head_dim, ff = c.intermediate_size;
  std::vector<NamedTensor> out = {{"model.embed_tokens.weight", t({c.vocab_size, h})}};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", t({h})});
    out.push_back({p + "self_attn.q_proj.weight", t({h, h})});
    out.push_back({p + "self_attn.k_proj.weight", t({kv, h})});
    out.push_back({p + "self_attn.v_proj.weight", t({kv, h})});
    out.push_back({p + "self_attn.o_proj.weight", t({h, h})});
    out.push_back({p + "post_attention_layernorm.weight", t({h})});
    out.push_back({p + "mlp.gate_proj.weight", t({ff, h})});
    out.push_back({p + "mlp.up_proj.weight", t({ff, h})});
    out.push_back({p + "mlp.down_proj.weight", t({h, ff})});
  }
  out.push_back({"model.norm.weight", t({h})});
  out.push_back({"lm_head.weight", t({c.vocab_size, h})});
  return out;
}

TEST(GgufQuantModel, MixtureFileReadsBackAsTheInMemoryQuantization) {
  TempDir dir;
  const ModelConfig c = small_llama();
  const auto hf = small_llama_tensors(c, 5);
  std::map<std::string, std::vector<float>> importance;
  std::vector<float> imp(static_cast<size_t>(c.hidden_size));
  for (size_t i = 0; i < imp.size(); ++i) imp[i] = 0.1f + static_cast<float>(i % 7);
  importance["model.layers.1.self_attn.k_proj.weight"] = imp;
  for (const char* spec : {"q4_0", "q8_0", "q5_1", "q4_k_m", "q2_k"}) {
    SCOPED_TRACE(spec);
    GgufModelWriteOptions o;
    o.recipe = parse_gguf_recipe(spec);
    o.importance = importance;
    std::vector<std::string> notices;
    o.notice = [&](const std::string& n) { notices.push_back(n); };
    const std::string path = dir.file(std::string(spec) + ".gguf");
    write_gguf_model(path, c, hf, nullptr, o);
    const auto types = gguf_model_tensor_types(c, hf, o);
    const GgufContents contents = read_gguf(path);
    EXPECT_EQ(contents.metadata.get<uint32_t>("general.file_type"), static_cast<uint32_t>(o.recipe->file_type));
    EXPECT_EQ(contents.metadata.get<uint32_t>("general.quantization_version"), 2u);
    size_t fallbacks = 0;
    for (const auto& t : types) {
      ASSERT_NE(contents.find(t.gguf_name), nullptr) << t.gguf_name;
      EXPECT_EQ(contents.find(t.gguf_name)->type, t.type) << t.gguf_name;
      if (!t.notice.empty()) ++fallbacks;
    }
    EXPECT_EQ(notices.size(), fallbacks);
    if (std::string(spec) == "q4_k_m") {
      EXPECT_GT(fallbacks, 0u);  // 64- and 96-wide rows cannot hold Q4_K
    }
    const GgufModel back = read_gguf_model(path);
    ASSERT_EQ(back.tensors.size(), hf.size());
    for (size_t i = 0; i < hf.size(); ++i) {
      const auto& t = types[i];
      ASSERT_EQ(back.tensors[i].name, hf[i].name);
      Tensor expected = hf[i].tensor;
      if (gguf_is_codec_type(t.type)) {
        // Rows quantize independently, so the q/k permutation commutes with quantization.
        const auto it = importance.find(hf[i].name);
        const Tensor q = gguf_quantize_matrix(t.type, hf[i].tensor,
                                              it == importance.end() ? std::span<const float>() : it->second);
        expected = gguf_dequantize_tensor(t.type, {q.bytes(), q.nbytes()}, hf[i].tensor.shape());
      } else if (t.type == GgmlType::F16) {
        expected = hf[i].tensor.cast(DType::F16).to_f32();
      }
      const Tensor got = back.tensors[i].tensor.to_f32();
      ASSERT_EQ(got.shape(), expected.shape());
      EXPECT_TRUE(std::equal(got.data<float>(), got.data<float>() + got.numel(), expected.data<float>()))
          << hf[i].name << " (" << ggml_type_name(t.type) << ")";
    }
  }
}

TEST(GgufQuantModel, PreEncodedBlocksAreWrittenAsGivenInLlamaCppRowOrder) {
  TempDir dir;
  const ModelConfig c = small_llama();
  const auto hf = small_llama_tensors(c, 9);
  const std::string q_name = "model.layers.0.self_attn.q_proj.weight";
  const Tensor& wq = hf[2].tensor;
  ASSERT_EQ(hf[2].name, q_name);
  GgufModelWriteOptions o;
  o.dtype = DType::F16;
  o.blocks[q_name] = {GgmlType::Q8_0, gguf_quantize_matrix(GgmlType::Q8_0, wq)};
  o.file_type = GgufFileType::Q8_0;
  const std::string path = dir.file("pre.gguf");
  write_gguf_model(path, c, hf, nullptr, o);
  const GgufContents contents = read_gguf(path);
  EXPECT_EQ(contents.metadata.get<uint32_t>("general.file_type"), 7u);
  const GgufTensorInfo& info = *contents.find("blk.0.attn_q.weight");
  EXPECT_EQ(info.type, GgmlType::Q8_0);
  EXPECT_EQ(contents.find("blk.0.attn_k.weight")->type, GgmlType::F16);
  // Stored rows are the HF rows permuted: GGUF row 2i + j of a head = HF row j * head_dim / 2 + i.
  const Tensor stored = contents.tensor(info);
  const Tensor hf_rows = gguf_dequantize_tensor(GgmlType::Q8_0,
                                                {o.blocks[q_name].rows.bytes(), o.blocks[q_name].rows.nbytes()},
                                                wq.shape());
  const int64_t hd = c.head_dim, cols = c.hidden_size;
  for (int64_t h = 0; h < c.n_heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const float* a = stored.data<float>() + (h * hd + 2 * i + j) * cols;
        const float* b = hf_rows.data<float>() + (h * hd + j * hd / 2 + i) * cols;
        EXPECT_TRUE(std::equal(a, a + cols, b));
      }
  const GgufModel back = read_gguf_model(path);
  const Tensor& got = back.tensors[2].tensor;
  EXPECT_TRUE(std::equal(got.data<float>(), got.data<float>() + got.numel(), hf_rows.data<float>()));

  o.blocks[q_name].rows = Tensor::zeros(DType::U8, {64, 10});
  expect_error([&] { write_gguf_model(dir.file("bad.gguf"), c, hf, nullptr, o); },
               {"pre-encoded Q8_0 blocks", "must be U8 [64, 68]", "[64, 10]"});
}

// Codes on a ggml grid (what GPTQ/AWQ/RTN chose) become blocks with exactly
// the values quant::dequantize gives.
TEST(GgufGrid, QuantizedTensorsOnAGgmlGridBecomeBlocksExactly) {
  std::mt19937 rng(13);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(6 * 96);
  for (float& x : v) x = dist(rng);
  const Tensor w = Tensor::from_f32(v, {6, 96});
  for (const GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) {
    const quant::Scheme s = *ggml_grid_scheme(t);
    EXPECT_EQ(ggml_type_for_scheme(s), t);
    const quant::QuantizedTensor q = quant::quantize(w, s);
    const auto blocks = gguf_blocks_from_quantized(q);
    ASSERT_TRUE(blocks) << ggml_type_name(t);
    EXPECT_EQ(blocks->type, t);
    const Tensor a = quant::dequantize(q);
    const Tensor b = gguf_dequantize_tensor(t, {blocks->rows.bytes(), blocks->rows.nbytes()}, {6, 96});
    EXPECT_TRUE(std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>())) << ggml_type_name(t);
  }
  EXPECT_EQ(ggml_grid_scheme(GgmlType::Q4_K), std::nullopt);
  // The restricted range is a subset of the same grid.
  EXPECT_EQ(ggml_type_for_scheme(quant::Scheme::parse("int4:g32:f16scale")), GgmlType::Q4_0);
  EXPECT_EQ(ggml_type_for_scheme(quant::Scheme::parse("int8:g32:full:f16scale")), GgmlType::Q8_0);
  EXPECT_EQ(ggml_type_for_scheme(quant::Scheme::parse("int4:g32")), std::nullopt);  // f32 scales
  {
    const quant::QuantizedTensor q = quant::quantize(w, quant::Scheme::parse("int4:g32:f16scale"));
    const auto blocks = gguf_blocks_from_quantized(q);
    ASSERT_TRUE(blocks);
    const Tensor a = quant::dequantize(q);
    const Tensor b = gguf_dequantize_tensor(GgmlType::Q4_0, {blocks->rows.bytes(), blocks->rows.nbytes()}, {6, 96});
    EXPECT_TRUE(std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>()));
  }
  EXPECT_FALSE(gguf_blocks_from_quantized(quant::quantize(w, quant::Scheme::parse("int4:g32:asym:f16scale"))));
  const Tensor ragged = Tensor::from_f32(std::vector<float>(2 * 40, 0.5f), {2, 40});
  EXPECT_FALSE(gguf_blocks_from_quantized(quant::quantize(ragged, *ggml_grid_scheme(GgmlType::Q8_0))));
}

}  // namespace
}  // namespace qf::formats
