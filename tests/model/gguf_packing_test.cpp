// GGUF Q4_0 / Q8_0 blocks on the integer kernels: the repacked matrix holds
// exactly ggml's values, and a quantized GGUF model loaded for the kernels
// (no float copy of its linear layers) computes the logits of the
// dequantized reference path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "formats/gguf_model.h"
#include "formats/gguf_quants.h"
#include "formats/gguf_recipe.h"
#include "model/gguf_packing.h"
#include "model/linear_layers.h"
#include "runtime/runtime.h"
#include "test_models.h"

namespace qf::model {
namespace {

using testing::Rng;

TEST(GgufPacking, BlocksRepackToGgmlsValuesExactly) {
  for (const formats::GgmlType type : {formats::GgmlType::Q4_0, formats::GgmlType::Q8_0}) {
    const int64_t rows = 5, cols = 96;
    Rng rng(3);
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (float& x : w) x = rng.normal(1.0f);
    std::fill(w.begin() + cols, w.begin() + cols + 32, 0.0f);  // an all-zero block: d = 0
    for (int64_t k = 0; k < cols; ++k) w[static_cast<size_t>(2 * cols + k)] = 0.25f + 0.01f * static_cast<float>(k % 7);  // d < 0 for Q4_0
    const Tensor blocks = formats::gguf_quantize_matrix(type, Tensor::from_f32(w, {rows, cols}));
    const auto packed = pack_gguf_blocks({type, blocks}, cols);
    EXPECT_EQ(packed->bits(), type == formats::GgmlType::Q4_0 ? 4 : 8);
    EXPECT_EQ(packed->group_size(), 32);
    const size_t rb = formats::gguf_row_bytes(type, cols);
    std::vector<float> want(static_cast<size_t>(cols)), got(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      formats::gguf_dequantize_row(type, {blocks.bytes() + r * rb, rb}, want);
      packed->dequantize_row(r, got);
      for (int64_t k = 0; k < cols; ++k) ASSERT_EQ(got[k], want[k]) << formats::ggml_type_name(type) << " " << r << "," << k;
    }
    if (type == formats::GgmlType::Q4_0) {
      EXPECT_LT(packed->row_scales(2)[0], 0.0f);  // ggml's d = max / -8
    }
    EXPECT_EQ(packed->row_scales(1)[0], 0.0f);
  }
}

TEST(GgufPacking, RejectsOtherTypesAndMisshapenRows) {
  const Tensor q4k = Tensor::zeros(DType::U8, {2, static_cast<int64_t>(formats::gguf_row_bytes(formats::GgmlType::Q4_K, 256))});
  EXPECT_FALSE(gguf_kernels_support(formats::GgmlType::Q4_K));
  EXPECT_THROW(pack_gguf_blocks({formats::GgmlType::Q4_K, q4k}, 256), Error);
  const Tensor q4 = Tensor::zeros(DType::U8, {2, 18});
  EXPECT_THROW(pack_gguf_blocks({formats::GgmlType::Q4_0, q4}, 64), Error);
}

// Max |a - b| over max |b|: the kernels sum in another order than OpenBLAS.
double relative_difference(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b.data<float>()[i])));
  }
  return diff / scale;
}

void expect_kernels_match_reference(const std::string& file, const ModelConfig& config, bool head_packed) {
  const Model ref = load_model(file);
  const Model packed = load_model(file, {.integer_kernels = true});
  for (const LinearLayer& l : all_linears(config))
    EXPECT_NE(packed.layers[static_cast<size_t>(l.layer)].packed[static_cast<size_t>(l.kind)], nullptr) << l.name;
  EXPECT_EQ(packed.lm_head_packed != nullptr, head_packed);
  EXPECT_LT(packed.weight_bytes(), ref.weight_bytes() / 2);
  const std::vector<int32_t> tokens = testing::random_tokens(24, static_cast<int32_t>(config.vocab_size), 5);
  runtime::Runtime a(ref, {.n_threads = 2}), b(packed, {.n_threads = 2});
  EXPECT_LT(relative_difference(b.forward(tokens), a.forward(tokens)), 1e-5) << file;
}

TEST(GgufPacking, LlamaGgufOnTheKernelsMatchesTheDequantizedPath) {
  testing::TempDir dir;
  for (const char* mix : {"q4_0", "q8_0"}) {
    for (const bool tied : {false, true}) {
      testing::LlamaDims d;
      d.hidden = 64;
      d.inter = 128;
      d.vocab = 96;
      d.tied = tied;
      const ModelConfig c = ModelConfig::from_hf_json(nlohmann::json::parse(testing::llama_config_json(d)), "test");
      formats::GgufModelWriteOptions o;
      o.recipe = formats::parse_gguf_recipe(mix);
      const std::string file = dir.path() / (std::string(mix) + (tied ? "_tied" : "") + ".gguf");
      formats::write_gguf_model(file, c, testing::random_llama_tensors(d, 11), nullptr, o);
      // An untied head is Q6_K in q4_0 (Q8_0 at this 64-wide row, llama.cpp's fallback) and
      // Q8_0 in q8_0: packed either way.
      expect_kernels_match_reference(file, c, !tied);
    }
  }
}

TEST(GgufPacking, Gpt2GgufOnTheKernelsMatchesTheDequantizedPath) {
  testing::TempDir dir;
  testing::Gpt2Dims d;
  d.hidden = 64;
  d.inter = 256;
  const ModelConfig c = ModelConfig::from_hf_json(nlohmann::json::parse(testing::gpt2_config_json(d)), "test");
  for (const char* mix : {"q4_0", "q8_0"}) {
    formats::GgufModelWriteOptions o;
    o.recipe = formats::parse_gguf_recipe(mix);
    const std::string file = dir.path() / (std::string("gpt2_") + mix + ".gguf");
    formats::write_gguf_model(file, c, testing::random_gpt2_tensors(d, 13), nullptr, o);
    expect_kernels_match_reference(file, c, false);
  }
}

}  // namespace
}  // namespace qf::model
