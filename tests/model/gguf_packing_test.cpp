// GGUF blocks (Q4_0, Q4_1, Q8_0, Q2_K, Q3_K, Q4_K, Q6_K) on the integer
// kernels: the repacked matrix holds
// exactly ggml's values, and a quantized GGUF model loaded for the kernels
// (no float copy of its linear layers) computes the logits of the
// dequantized reference path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/float_formats.h"

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

constexpr formats::GgmlType kPacked[] = {formats::GgmlType::Q4_0, formats::GgmlType::Q4_1, formats::GgmlType::Q8_0,
                                         formats::GgmlType::Q2_K, formats::GgmlType::Q3_K, formats::GgmlType::Q4_K,
                                         formats::GgmlType::Q6_K};

bool is_k_type(formats::GgmlType t) {
  return t == formats::GgmlType::Q2_K || t == formats::GgmlType::Q3_K || t == formats::GgmlType::Q4_K ||
         t == formats::GgmlType::Q6_K;
}

// Every row of `blocks` repacked equals ggml's decoder bit for bit.
void expect_exact(formats::GgmlType type, const Tensor& blocks, int64_t cols,
                  const kernels::PackedMatrix& packed) {
  const size_t rb = formats::gguf_row_bytes(type, cols);
  std::vector<float> want(static_cast<size_t>(cols)), got(static_cast<size_t>(cols));
  for (int64_t r = 0; r < blocks.dim(0); ++r) {
    formats::gguf_dequantize_row(type, {blocks.bytes() + r * rb, rb}, want);
    packed.dequantize_row(r, got);
    for (int64_t k = 0; k < cols; ++k)
      ASSERT_EQ(got[k], want[k]) << formats::ggml_type_name(type) << " row " << r << " col " << k;
  }
}

TEST(GgufPacking, BlocksRepackToGgmlsValuesExactly) {
  for (const formats::GgmlType type : kPacked) {
    const int64_t rows = 6, cols = 512;
    Rng rng(3);
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (float& x : w) x = rng.normal(1.0f);
    std::fill(w.begin() + cols, w.begin() + cols + 256, 0.0f);  // an all-zero (super-)block: d = 0
    for (int64_t k = 0; k < cols; ++k) w[static_cast<size_t>(2 * cols + k)] = 0.25f + 0.01f * static_cast<float>(k % 7);  // d < 0 for Q4_0
    // Row 3: sub-blocks of one negative value, which the K types store as scale 0 and min > 0.
    for (int64_t k = 0; k < cols; ++k) w[static_cast<size_t>(3 * cols + k)] = k < 64 ? -0.3f : rng.normal(1.0f);
    const Tensor blocks = formats::gguf_quantize_matrix(type, Tensor::from_f32(w, {rows, cols}));
    const auto packed = pack_gguf_blocks({type, blocks}, cols);
    const bool q6k = type == formats::GgmlType::Q6_K, g16 = q6k || type == formats::GgmlType::Q2_K ||
                                                            type == formats::GgmlType::Q3_K;
    EXPECT_EQ(packed->group_size(), g16 ? 16 : 32) << formats::ggml_type_name(type);
    EXPECT_EQ(packed->has_mins(), type == formats::GgmlType::Q4_1 || type == formats::GgmlType::Q4_K ||
                                      type == formats::GgmlType::Q2_K);
    expect_exact(type, blocks, cols, *packed);
    if (HasFatalFailure()) return;
    // The K types keep ggml's two-level scales (one super-block per 256 weights); every type has one zero point.
    EXPECT_EQ(packed->two_level(), is_k_type(type)) << formats::ggml_type_name(type);
    EXPECT_TRUE(packed->uniform_zero()) << formats::ggml_type_name(type);
    if (packed->two_level()) {
      EXPECT_EQ(packed->super_groups() * packed->group_size(), 256);
    }
    // Resident bits per weight (rows * 4 bytes of row sums aside): Q4_K 4.75 (file: 4.5), Q6_K's 8-bit codes
    // 8.625 (file: 6.5625), Q3_K 3.625 (3.4375), Q2_K 3.25 (2.625); Q4_0 5 (4.5), Q8_0 9 (8.5), Q4_1 6 (5).
    const std::map<formats::GgmlType, double> bpw = {
        {formats::GgmlType::Q4_0, 5.0},   {formats::GgmlType::Q4_1, 6.0},  {formats::GgmlType::Q8_0, 9.0},
        {formats::GgmlType::Q2_K, 3.25}, {formats::GgmlType::Q3_K, 3.625}, {formats::GgmlType::Q4_K, 4.75},
        {formats::GgmlType::Q6_K, 8.625}};
    const double row_sums = packed->bits() == 8 ? rows * 4.0 : 0.0;
    const double zeros = static_cast<double>(packed->groups());
    EXPECT_EQ((static_cast<double>(packed->bytes()) - row_sums - zeros) * 8 / (rows * cols), bpw.at(type))
        << formats::ggml_type_name(type);
    std::vector<float> scales(static_cast<size_t>(packed->groups())), mins(scales.size());
    packed->group_scales(1, scales);
    EXPECT_EQ(scales[0], 0.0f) << formats::ggml_type_name(type);
    if (type == formats::GgmlType::Q4_0) {
      packed->group_scales(2, scales);
      EXPECT_LT(scales[0], 0.0f);  // ggml's d = max / -8
    }
    if (type == formats::GgmlType::Q4_K) {
      packed->group_scales(3, scales);
      packed->group_mins(3, mins);
      EXPECT_EQ(scales[0], 0.0f);
      EXPECT_GT(mins[0], 0.0f);
    }
    if (q6k) {  // signed sub-block scales
      int negative = 0;
      for (int64_t r = 0; r < rows; ++r) {
        packed->group_scales(r, scales);
        for (float v : scales) negative += v < 0.0f;
      }
      EXPECT_GT(negative, 0);
    }
  }
}

// Random block bytes (finite fp16 d / dmin, every other bit random): every
// code, scale, min and sign pattern of the layouts, not only what ggml's
// encoders produce.
TEST(GgufPacking, RandomBlockBytesRepackExactly) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> half(0.0f, 0.05f);
  for (const formats::GgmlType type : kPacked) {
    const int64_t rows = 4, cols = 512;
    const int64_t rb = static_cast<int64_t>(formats::gguf_row_bytes(type, cols));
    const int64_t block = is_k_type(type) ? 256 : 32, block_bytes = rb / (cols / block);
    std::vector<uint8_t> bytes(static_cast<size_t>(rows * rb));
    for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
    // Where each type keeps its fp16 fields (d, and dmin / m).
    std::vector<int64_t> f16_at;
    switch (type) {
      case formats::GgmlType::Q4_0: case formats::GgmlType::Q8_0: f16_at = {0}; break;
      case formats::GgmlType::Q4_1: case formats::GgmlType::Q4_K: f16_at = {0, 2}; break;
      case formats::GgmlType::Q2_K: f16_at = {80, 82}; break;
      case formats::GgmlType::Q3_K: f16_at = {108}; break;
      default: f16_at = {208}; break;
    }
    for (int64_t off = 0; off < rows * rb; off += block_bytes)
      for (int64_t at : f16_at) {
        const uint16_t h = f32_to_f16(half(rng));
        std::memcpy(bytes.data() + off + at, &h, 2);
      }
    const Tensor blocks = Tensor::view(DType::U8, {rows, rb}, bytes.data(), nullptr);
    const auto packed = pack_gguf_blocks({type, blocks}, cols);
    expect_exact(type, blocks, cols, *packed);
    if (HasFatalFailure()) return;
  }
}

TEST(GgufPacking, RejectsOtherTypesAndMisshapenRows) {
  const Tensor q5k = Tensor::zeros(DType::U8, {2, static_cast<int64_t>(formats::gguf_row_bytes(formats::GgmlType::Q5_K, 256))});
  for (auto t : {formats::GgmlType::Q5_0, formats::GgmlType::Q5_1, formats::GgmlType::Q5_K, formats::GgmlType::F16})
    EXPECT_FALSE(gguf_kernels_support(t));
  for (auto t : kPacked) EXPECT_TRUE(gguf_kernels_support(t));
  EXPECT_THROW(pack_gguf_blocks({formats::GgmlType::Q5_K, q5k}, 256), Error);
  const Tensor q4 = Tensor::zeros(DType::U8, {2, 18});
  EXPECT_THROW(pack_gguf_blocks({formats::GgmlType::Q4_0, q4}, 64), Error);
  const Tensor q4k = Tensor::zeros(DType::U8, {2, 144});
  EXPECT_THROW(pack_gguf_blocks({formats::GgmlType::Q4_K, q4k}, 512), Error);
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

// The block type of every block-quantized matrix in `file`, by HF name (GPT-2's
// "transformer." dropped, as the packed layers are named).
std::map<std::string, formats::GgmlType> block_types(const std::string& file) {
  std::map<std::string, formats::GgmlType> out;
  formats::GgufModelReadOptions ro;
  ro.keep_blocks = [&](formats::GgmlType type, const std::string& name) {
    out[name.starts_with("transformer.") ? name.substr(12) : name] = type;
    return false;
  };
  formats::read_gguf_model(file, ro);
  return out;
}

// Loads `file` both ways, checks which layers are packed (every linear whose
// block type has a kernel, and the untied head when quantized) and that the
// logits agree within 1e-5 of the largest; returns the relative difference.
double expect_kernels_match_reference(const std::string& file, const ModelConfig& config) {
  const std::map<std::string, formats::GgmlType> types = block_types(file);
  auto packs = [&](const std::string& name) {
    const auto it = types.find(name);
    return it != types.end() && gguf_kernels_support(it->second);
  };
  const std::string embed_name = config.arch == Architecture::GPT2 ? "wte.weight" : "model.embed_tokens.weight";
  const bool embed_packed = packs(embed_name);
  // A quantized untied head is packed; a tied one is the embedding's table, packed with it.
  const bool head_packed = config.tie_embeddings ? embed_packed : packs("lm_head.weight");
  const Model ref = load_model(file);
  const Model packed = load_model(file, {.integer_kernels = true});
  int n_packed = 0;
  for (const LinearLayer& l : all_linears(config)) {
    const auto it = types.find(l.name + ".weight");
    const bool want = it != types.end() && gguf_kernels_support(it->second);
    EXPECT_EQ(packed.layers[static_cast<size_t>(l.layer)].packed[static_cast<size_t>(l.kind)] != nullptr, want)
        << l.name << " in " << file;
    n_packed += want;
  }
  EXPECT_GT(n_packed, 0) << file;
  EXPECT_EQ(packed.lm_head_packed != nullptr, head_packed) << file;
  EXPECT_EQ(packed.embed_packed != nullptr, embed_packed) << file;
  if (config.tie_embeddings && embed_packed) {
    EXPECT_EQ(packed.lm_head_packed, packed.embed_packed) << file;
  }
  if (!config.tie_embeddings) {
    EXPECT_TRUE(packs("lm_head.weight")) << file;  // every mixture quantizes output.weight
  }
  EXPECT_EQ(packed.parameter_count(), ref.parameter_count()) << file;
  // No float copy of a packed layer (fallback layers are f32 on both paths).
  if (n_packed == static_cast<int>(all_linears(config).size()))
    EXPECT_LT(packed.weight_bytes(), ref.weight_bytes() / 2) << file;
  else
    EXPECT_LT(packed.weight_bytes(), ref.weight_bytes()) << file;
  const std::vector<int32_t> tokens = testing::random_tokens(24, static_cast<int32_t>(config.vocab_size), 5);
  runtime::Runtime a(ref, {.n_threads = 2}), b(packed, {.n_threads = 2});
  const double diff = relative_difference(b.forward(tokens), a.forward(tokens));
  EXPECT_LT(diff, 1e-5) << file;
  return diff;
}

// Widths of 256 so the K types are really used (a row that is no multiple of
// 256 falls back to Q4_0 / Q5_0 / Q8_0); q2_k and q3_k_m put Q3_K/Q4_K/Q5_K
// on some layers, q5_k_m Q5_K (no kernel: dequantized) beside Q6_K.
constexpr const char* kMixes[] = {"q4_0", "q4_1", "q8_0", "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"};

TEST(GgufPacking, LlamaGgufOnTheKernelsMatchesTheDequantizedPath) {
  testing::TempDir dir;
  for (const char* mix : kMixes) {
    for (const bool tied : {false, true}) {
      testing::LlamaDims d;
      d.hidden = 256;
      d.inter = 512;
      d.heads = 4;
      d.kv_heads = 2;
      d.head_dim = 64;
      d.layers = 2;
      d.vocab = 96;
      d.tied = tied;
      const ModelConfig c = ModelConfig::from_hf_json(nlohmann::json::parse(testing::llama_config_json(d)), "test");
      formats::GgufModelWriteOptions o;
      o.recipe = formats::parse_gguf_recipe(mix);
      const std::string file = dir.path() / (std::string(mix) + (tied ? "_tied" : "") + ".gguf");
      formats::write_gguf_model(file, c, testing::random_llama_tensors(d, 11), nullptr, o);
      const double diff = expect_kernels_match_reference(file, c);
      std::printf("llama %s%s: max relative logit difference %.3g\n", mix, tied ? " tied" : "", diff);
    }
  }
}

TEST(GgufPacking, Gpt2GgufOnTheKernelsMatchesTheDequantizedPath) {
  testing::TempDir dir;
  testing::Gpt2Dims d;
  d.hidden = 256;
  d.inter = 1024;
  const ModelConfig c = ModelConfig::from_hf_json(nlohmann::json::parse(testing::gpt2_config_json(d)), "test");
  for (const char* mix : kMixes) {
    formats::GgufModelWriteOptions o;
    o.recipe = formats::parse_gguf_recipe(mix);
    const std::string file = dir.path() / (std::string("gpt2_") + mix + ".gguf");
    formats::write_gguf_model(file, c, testing::random_gpt2_tensors(d, 13), nullptr, o);
    const double diff = expect_kernels_match_reference(file, c);
    std::printf("gpt2 %s: max relative logit difference %.3g\n", mix, diff);
  }
}

}  // namespace
}  // namespace qf::model
