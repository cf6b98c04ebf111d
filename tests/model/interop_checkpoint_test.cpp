// GPTQ, AWQ and compressed-tensors checkpoints: golden packing on hand-made
// words, export -> import -> identical codes, scales and logits for every
// layout and width, and hostile files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/float_formats.h"
#include "formats/int32_packing.h"
#include "formats/safetensors.h"
#include "model/arch/fused_projections.h"
#include "model/awq_checkpoint.h"
#include "model/compressed_tensors_checkpoint.h"
#include "model/gptq_checkpoint.h"
#include "model/linear_layers.h"
#include "model/quantized_formats.h"
#include "numpy_python.h"
#include "runtime/runtime.h"
#include "shared_data.h"
#include "test_models.h"
#include "tokenizer/load.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;
using formats::Int32Layout;
using nlohmann::json;
using testing::expect_error;
using testing::TempDir;

// ---------------------------------------------------------------------------
// Golden packing.

TEST(Int32Packing, AwqOrderPutsColumnsInNibbles0246_1357) {
  const std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 8};
  // Nibble i holds column kAwqOrder[i]: 1, 3, 5, 7, 2, 4, 6, 8 from the low bits.
  const std::vector<int32_t> words = formats::pack_int32_rows(codes, 1, 8, 4, Int32Layout::AwqOrder, 1);
  ASSERT_EQ(words.size(), 1u);
  EXPECT_EQ(static_cast<uint32_t>(words[0]), 0x86427531u);
  EXPECT_EQ(formats::unpack_int32_rows(words, 1, 8, 4, Int32Layout::AwqOrder, 1), codes);
}

TEST(Int32Packing, Gptq4BitIsLowNibbleFirst) {
  const std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 8, 15, 0, 0, 0, 0, 0, 0, 9};
  const std::vector<int32_t> words = formats::pack_int32_rows(codes, 1, 16, 4, Int32Layout::Stream, 2);
  EXPECT_EQ(static_cast<uint32_t>(words[0]), 0x87654321u);
  EXPECT_EQ(static_cast<uint32_t>(words[1]), 0x9000000Fu);
}

TEST(Int32Packing, Gptq3BitRunsAcrossWordsAsAutoGptq) {
  // AutoGPTQ: codes 0..9 in word 0, code 10's low 2 bits at 30..31 and its top
  // bit at bit 0 of word 1; codes 11..20 from bit 1; code 21's low bit at 31,
  // its top 2 bits at bits 0..1 of word 2; codes 22..31 from bit 2.
  std::vector<uint8_t> codes(32, 0);
  codes[0] = 7;
  codes[10] = 5;  // 0b101
  codes[11] = 3;
  codes[21] = 6;  // 0b110
  codes[22] = 1;
  codes[31] = 7;
  const std::vector<int32_t> w = formats::pack_int32_rows(codes, 1, 32, 3, Int32Layout::Stream, 3);
  EXPECT_EQ(static_cast<uint32_t>(w[0]), 7u | (1u << 30));             // code 10 low bits 01
  EXPECT_EQ(static_cast<uint32_t>(w[1]), 1u | (3u << 1));              // code 10 top bit, code 11
  EXPECT_EQ(static_cast<uint32_t>(w[2]), 3u | (1u << 2) | (7u << 29));  // code 21 top bits 11, 22, 31
  EXPECT_EQ(formats::unpack_int32_rows(w, 1, 32, 3, Int32Layout::Stream, 3), codes);
}

TEST(Int32Packing, CompressedTensors3BitPacksTenPerWord) {
  std::vector<uint8_t> codes(12, 0);
  codes[9] = 7;
  codes[10] = 5;
  codes[11] = 1;
  const std::vector<int32_t> w = formats::pack_int32_rows(codes, 1, 12, 3, Int32Layout::WordAligned, 2);
  EXPECT_EQ(static_cast<uint32_t>(w[0]), 7u << 27);
  EXPECT_EQ(static_cast<uint32_t>(w[1]), 5u | (1u << 3));
  EXPECT_EQ(formats::int32_words(12, 3, Int32Layout::WordAligned), 2);
}

TEST(Int32Packing, RandomRoundTripsEveryLayoutAndWidth) {
  testing::Rng rng(3);
  for (int bits : {2, 3, 4, 8}) {
    for (Int32Layout layout : {Int32Layout::Stream, Int32Layout::WordAligned, Int32Layout::AwqOrder}) {
      if (layout == Int32Layout::AwqOrder && bits != 4) continue;
      const int64_t rows = 3, cols = 96;
      std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
      for (auto& c : codes) c = static_cast<uint8_t>(rng.below(1 << bits));
      const int64_t words = formats::int32_words(cols, bits, layout);
      EXPECT_EQ(formats::unpack_int32_rows(formats::pack_int32_rows(codes, rows, cols, bits, layout, words), rows, cols,
                                           bits, layout, words),
                codes)
          << bits << " bits";
    }
  }
}

// ---------------------------------------------------------------------------
// Tiny models and their quantization.

testing::LlamaDims llama_dims() {
  testing::LlamaDims d;
  d.hidden = 64;
  d.inter = 96;
  d.layers = 2;
  d.heads = 4;
  d.kv_heads = 2;
  d.head_dim = 16;
  d.bias = false;
  return d;
}

Model llama_model(uint64_t seed) {
  const testing::LlamaDims d = llama_dims();
  return build_model(ModelConfig::from_hf_json(json::parse(testing::llama_config_json(d)), "mem"),
                     testing::random_llama_tensors(d, seed), "mem");
}

// Phi-3: Llama's shapes, stored with fused qkv_proj and gate_up_proj.
Model phi3_model(uint64_t seed) {
  const testing::LlamaDims d = llama_dims();
  json config = json::parse(testing::llama_config_json(d));
  config["model_type"] = "phi3";
  config["pad_token_id"] = nullptr;
  return build_model(ModelConfig::from_hf_json(config, "mem"), testing::random_llama_tensors(d, seed), "mem");
}

Model gpt2_model(uint64_t seed) {
  testing::Gpt2Dims d;
  d.hidden = 64;
  d.inter = 256;  // n_inner is null: 4 * hidden
  return build_model(ModelConfig::from_hf_json(json::parse(testing::gpt2_config_json(d)), "mem"),
                     testing::random_gpt2_tensors(d, seed), "mem");
}

// Every linear layer quantized with `spec`, the float weights dropped.
QuantizedModel quantize_all(const Model& m, const std::string& spec) {
  QuantizedModel qm;
  qm.model = m;
  const quant::Scheme scheme = quant::Scheme::parse(spec);
  for (const LinearLayer& l : all_linears(m.config)) {
    Tensor& w = linear_weight(qm.model.layers[static_cast<size_t>(l.layer)], l.kind);
    qm.linears.push_back({l.name, quant::quantize(weight_out_in(l, w), scheme)});
    w = Tensor();
  }
  return qm;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.empty() || b.empty()) return a.empty() && b.empty();
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

std::string tokenizer_source(const TempDir& tmp) {
  const std::string src = tmp.file("src");
  fs::create_directories(src);
  testing::write_text(src + "/tokenizer.json", "{}");
  return src;
}

Tensor logits_of(const Model& m) {
  runtime::Runtime rt(m);
  const std::vector<int32_t> tokens = testing::random_tokens(12, static_cast<int32_t>(m.config.vocab_size), 5);
  return rt.forward(tokens);
}

void expect_same_quantized(const QuantizedModel& want, const QuantizedModel& got) {
  ASSERT_EQ(got.linears.size(), want.linears.size());
  for (size_t i = 0; i < want.linears.size(); ++i) {
    const QuantizedLinear& a = want.linears[i];
    const QuantizedLinear& b = got.linears[i];
    SCOPED_TRACE(a.name);
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.weight.scheme.to_string(), a.weight.scheme.to_string());
    EXPECT_TRUE(same_bytes(a.weight.codes, b.weight.codes));
    EXPECT_TRUE(same_bytes(a.weight.scales, b.weight.scales));
    EXPECT_TRUE(same_bytes(a.weight.zero_points, b.weight.zero_points));
  }
}

// Export, import through the one entry point, and through load_model.
void expect_round_trip(const QuantizedModel& qm, QuantizedFormat format, const TempDir& tmp) {
  const std::string dir = tmp.file(std::string(quantized_format_name(format)));
  save_quantized(format, dir, qm, tokenizer::Vocab{}, tokenizer_source(tmp));
  ASSERT_TRUE(is_quantized_checkpoint(dir));
  ASSERT_EQ(detect_quantized_format(dir), format);
  const QuantizedModel back = load_quantized(dir);
  expect_same_quantized(qm, back);
  const Tensor want = logits_of(dequantized_model(qm));
  const Tensor got = logits_of(load_model(dir));
  EXPECT_TRUE(same_bytes(want, got)) << "logits differ";
}

struct Case {
  QuantizedFormat format;
  std::string scheme;
};

class RoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(RoundTrip, LlamaCodesScalesAndLogitsAreIdentical) {
  TempDir tmp;
  expect_round_trip(quantize_all(llama_model(11), GetParam().scheme), GetParam().format, tmp);
}

TEST_P(RoundTrip, Gpt2Conv1dLayersToo) {
  TempDir tmp;
  expect_round_trip(quantize_all(gpt2_model(12), GetParam().scheme), GetParam().format, tmp);
}

// compressed-tensors packs 3-bit zero points ten to a word along the output
// rows: q's 64 rows and k's 32 fill no whole words, so no fused module holds them.
bool fused_zero_points_straddle_words(const Case& c) {
  return c.format == QuantizedFormat::CompressedTensors && c.scheme.starts_with("int3") &&
         c.scheme.find("asym") != std::string::npos;
}

// The checkpoint holds qkv_proj / gate_up_proj modules (what transformers'
// Phi3 builds), read back into the same parts.
TEST_P(RoundTrip, Phi3FusedProjectionsToo) {
  TempDir tmp;
  const QuantizedModel qm = quantize_all(phi3_model(16), GetParam().scheme);
  if (fused_zero_points_straddle_words(GetParam())) {
    expect_error([&] { save_quantized(GetParam().format, tmp.file("ct"), qm, tokenizer::Vocab{}, tokenizer_source(tmp)); },
                 {"qkv_proj.weight_zero_point", "cannot hold them"});
    return;
  }
  expect_round_trip(qm, GetParam().format, tmp);
  const formats::SafetensorsContents c =
      formats::read_safetensors(tmp.file(std::string(quantized_format_name(GetParam().format))) + "/model.safetensors");
  bool fused = false, parts = false;
  for (const auto& nt : c.tensors) {
    fused = fused || nt.name.starts_with("model.layers.1.self_attn.qkv_proj.");
    parts = parts || nt.name.find("q_proj.") != std::string::npos || nt.name.find("gate_proj.") != std::string::npos;
  }
  EXPECT_TRUE(fused);
  EXPECT_FALSE(parts);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* s : {"int2:g32:f16scale", "int3:g32:asym:f16scale", "int4:g32:f16scale", "int4:g16:asym:f16scale",
                        "int4:channel:f16scale", "int8:g64:f16scale", "int8:channel:asym:f16scale"})
    out.push_back({QuantizedFormat::Gptq, s});
  for (const char* s : {"int4:g32:f16scale", "int4:g16:asym:f16scale", "int4:channel:asym:f16scale"})
    out.push_back({QuantizedFormat::Awq, s});
  for (const char* s : {"int2:g32", "int3:g16:asym", "int4:g32:f16scale", "int4:channel:asym", "int8:g32",
                        "int8:channel:asym:f16scale"})
    out.push_back({QuantizedFormat::CompressedTensors, s});
  return out;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s = std::string(quantized_format_name(info.param.format)) + "_" + info.param.scheme;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Formats, RoundTrip, ::testing::ValuesIn(cases()), case_name);

TEST(InteropCheckpoint, GptqV2AndMixedCompressedTensorsGroupsRoundTrip) {
  TempDir tmp;
  const QuantizedModel qm = quantize_all(llama_model(13), "int4:g32:asym:f16scale");
  const std::string dir = tmp.file("v2");
  save_gptq_folder(dir, qm, tokenizer::Vocab{}, tokenizer_source(tmp), {.v2 = true});
  expect_same_quantized(qm, load_quantized(dir));
  // Mixed schemes: one compressed-tensors config group per scheme, targeted by name.
  QuantizedModel mixed = quantize_all(llama_model(14), "int4:g32");
  mixed.linears[1].weight =
      quant::quantize(quant::dequantize(mixed.linears[1].weight), quant::Scheme::parse("int8:channel:asym"));
  expect_round_trip(mixed, QuantizedFormat::CompressedTensors, tmp);
}

TEST(InteropCheckpoint, GptqV1StoresZeroMinusOneWrapping) {
  TempDir tmp;
  Model m = llama_model(15);
  // Non-negative weights: every asymmetric zero point is 0, stored by v1 as 0 - 1 = 15.
  LayerWeights& L = m.layers[0];
  std::vector<float> w = L.wq.to_f32_vector();
  for (float& x : w) x = std::fabs(x);
  L.wq = Tensor::from_f32(w, L.wq.shape());
  const QuantizedModel qm = quantize_all(m, "int4:g32:asym:f16scale");
  for (bool v2 : {false, true}) {
    const std::string dir = tmp.file(v2 ? "v2" : "v1");
    save_gptq_folder(dir, qm, tokenizer::Vocab{}, tokenizer_source(tmp), {.v2 = v2});
    const formats::SafetensorsContents c = formats::read_safetensors(dir + "/model.safetensors");
    for (const auto& nt : c.tensors) {
      if (nt.name != "model.layers.0.self_attn.q_proj.qzeros") continue;
      ASSERT_EQ(nt.tensor.shape(), (Shape{2, 64 * 4 / 32}));
      for (int64_t i = 0; i < nt.tensor.numel(); ++i)
        EXPECT_EQ(nt.tensor.data<int32_t>()[i], v2 ? 0 : -1) << i;
    }
    const json qc = json::parse(read_text_file(dir + "/quantize_config.json"));
    EXPECT_EQ(qc["checkpoint_format"], v2 ? "gptq_v2" : "gptq");
    expect_same_quantized(qm, load_quantized(dir));
  }
}

// ---------------------------------------------------------------------------
// An independent reader: numpy unpacks our files the way AutoGPTQ, AutoAWQ and
// compressed-tensors do and must get our dequantized weights bit for bit.

void expect_numpy_agrees(const std::string& dir, const std::string& ours, size_t layers) {
  const test::ShellResult r = test::run_shell(test::numpy_python() + " " + QF_SOURCE_DIR +
                                              "/tests/model/interop_reference.py " + dir + " " + ours + " 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "ok " + std::to_string(layers) + "\n");
}

class NumpyReference : public ::testing::TestWithParam<Case> {};

TEST_P(NumpyReference, UnpacksOurFilesToOurWeights) {
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy";
  TempDir tmp;
  const QuantizedModel qm = quantize_all(llama_model(41), GetParam().scheme);
  const std::string dir = tmp.file("ckpt");
  save_quantized(GetParam().format, dir, qm, tokenizer::Vocab{}, tokenizer_source(tmp));
  std::vector<formats::NamedTensor> ours;
  for (const QuantizedLinear& ql : qm.linears) ours.push_back({ql.name, quant::dequantize(ql.weight)});
  formats::write_safetensors(tmp.file("ours.safetensors"), ours);
  expect_numpy_agrees(dir, tmp.file("ours.safetensors"), qm.linears.size());
}

// Phi-3's fused modules unpacked by numpy as whole modules: our parts' weights, stacked.
TEST_P(NumpyReference, UnpacksFusedPhi3ModulesToOurStackedParts) {
  if (test::numpy_python().empty()) GTEST_SKIP() << "no python3 with numpy";
  if (fused_zero_points_straddle_words(GetParam())) GTEST_SKIP() << "refused by the writer (RoundTrip checks it)";
  TempDir tmp;
  const QuantizedModel qm = quantize_all(phi3_model(42), GetParam().scheme);
  const std::string dir = tmp.file("ckpt");
  save_quantized(GetParam().format, dir, qm, tokenizer::Vocab{}, tokenizer_source(tmp));
  std::vector<formats::NamedTensor> ours;
  for (const QuantizedLinear& ql : qm.linears) ours.push_back({ql.name + ".weight", quant::dequantize(ql.weight)});
  ours = fuse_projections(qm.model.config, ours);
  for (auto& nt : ours) nt.name.resize(nt.name.size() - 7);  // module names, as the reference expects
  formats::write_safetensors(tmp.file("ours.safetensors"), ours);
  expect_numpy_agrees(dir, tmp.file("ours.safetensors"), ours.size());
}

INSTANTIATE_TEST_SUITE_P(Formats, NumpyReference, ::testing::ValuesIn(cases()), case_name);

// ---------------------------------------------------------------------------
// Hostile files: each starts from a good checkpoint and breaks one thing.

using Edit = std::function<void(std::vector<formats::NamedTensor>&)>;

std::string saved(const TempDir& tmp, QuantizedFormat format, const std::string& scheme) {
  const std::string dir = tmp.file("good");
  if (!fs::exists(dir))
    save_quantized(format, dir, quantize_all(llama_model(21), scheme), tokenizer::Vocab{}, tokenizer_source(tmp));
  return dir;
}

void edit_tensors(const std::string& dir, const Edit& edit) {
  const std::string file = dir + "/model.safetensors";
  std::vector<formats::NamedTensor> tensors = formats::read_safetensors(file).tensors;
  for (auto& t : tensors) t.tensor = t.tensor.clone();  // off the mapping before it is replaced
  edit(tensors);
  formats::write_safetensors(file, tensors);
}

void edit_config(const std::string& dir, const std::function<void(json&)>& edit) {
  json config = json::parse(read_text_file(dir + "/config.json"));
  edit(config["quantization_config"]);
  testing::write_text(dir + "/config.json", config.dump(2));
}

formats::NamedTensor& find(std::vector<formats::NamedTensor>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return t;
  throw std::runtime_error("test: no tensor " + name);
}

void set_scale(std::vector<formats::NamedTensor>& ts, const std::string& name, float value) {
  Tensor& t = find(ts, name).tensor;
  if (t.dtype() == DType::F16) {
    t.mutable_data<uint16_t>()[3] = f32_to_f16(value);
  } else {
    t.mutable_data<float>()[3] = value;
  }
}

const std::string kQ = "model.layers.0.self_attn.q_proj";

TEST(InteropHostile, GptqWrongPackedShape) {
  TempDir tmp;
  const std::string dir = saved(tmp, QuantizedFormat::Gptq, "int4:g32:f16scale");
  edit_tensors(dir, [](auto& ts) { find(ts, kQ + ".qweight").tensor = Tensor::zeros(DType::I32, {7, 64}); });
  expect_error([&] { load_quantized(dir); }, {"model.safetensors", kQ + ".qweight", "I32 [7, 64]", "expected I32 [8, 64]"});
}

TEST(InteropHostile, GptqGidxOutOfRange) {
  TempDir tmp;
  const std::string dir = saved(tmp, QuantizedFormat::Gptq, "int4:g32:f16scale");
  edit_tensors(dir, [](auto& ts) { find(ts, kQ + ".g_idx").tensor.template mutable_data<int32_t>()[5] = 2; });
  expect_error([&] { load_quantized(dir); }, {"model.safetensors", kQ + ".g_idx", "group 2 at [5] outside [0, 2)"});
}

TEST(InteropHostile, GptqZeroAndNanScales) {
  for (float bad : {0.0f, std::numeric_limits<float>::quiet_NaN(), -1.0f, std::numeric_limits<float>::infinity()}) {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::Gptq, "int4:g32:f16scale");
    edit_tensors(dir, [&](auto& ts) { set_scale(ts, kQ + ".scales", bad); });
    expect_error([&] { load_quantized(dir); }, {"model.safetensors", kQ + ".scales", "not finite and positive"});
  }
}

TEST(InteropHostile, GptqMissingTensor) {
  TempDir tmp;
  const std::string dir = saved(tmp, QuantizedFormat::Gptq, "int4:g32:f16scale");
  edit_tensors(dir, [](auto& ts) { std::erase_if(ts, [](const auto& t) { return t.name == kQ + ".qzeros"; }); });
  expect_error([&] { load_quantized(dir); }, {"model.safetensors", "missing tensor", kQ + ".qzeros"});
}

TEST(InteropHostile, GptqSymmetricWithOtherZeros) {
  TempDir tmp;
  const std::string dir = saved(tmp, QuantizedFormat::Gptq, "int4:g32:f16scale");
  edit_tensors(dir, [](auto& ts) { find(ts, kQ + ".qzeros").tensor.template mutable_data<int32_t>()[0] = 0; });
  expect_error([&] { load_quantized(dir); }, {kQ + ".qzeros", "symmetric"});
}

TEST(InteropHostile, GptqBadQuantizationConfig) {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> edits = {
      {[](json& qc) { qc["bits"] = 5; }, "\"bits\" 5"},
      {[](json& qc) { qc["bits"] = "four"; }, "\"bits\" must be an integer"},
      {[](json& qc) { qc["group_size"] = 0; }, "\"group_size\" 0"},
      {[](json& qc) { qc["sym"] = "yes"; }, "\"sym\" must be true or false"},
      {[](json& qc) { qc["checkpoint_format"] = "marlin"; }, "\"checkpoint_format\" is \"marlin\""},
      {[](json& qc) { qc.erase("bits"); }, "has no \"bits\""},
      {[](json& qc) { qc["quant_method"] = "bitsandbytes"; }, "\"bitsandbytes\" is not supported"},
      {[](json& qc) { qc = "gptq"; }, "must be an object with a string \"quant_method\""},
  };
  for (const auto& [edit, message] : edits) {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::Gptq, "int4:g32:f16scale");
    edit_config(dir, edit);
    expect_error([&] { load_quantized(dir); }, {"config.json", message});
    expect_error([&] { load_model(dir); }, {"config.json", message});
  }
}

TEST(InteropHostile, GptqActOrderLayerIsDequantizedToFloat) {
  TempDir tmp;
  const std::string dir = saved(tmp, QuantizedFormat::Gptq, "int4:g32:f16scale");
  edit_tensors(dir, [](auto& ts) {
    int32_t* g = find(ts, kQ + ".g_idx").tensor.template mutable_data<int32_t>();
    std::swap(g[0], g[63]);  // in range, not contiguous
  });
  const QuantizedModel qm = load_quantized(dir);
  EXPECT_EQ(qm.linears.size(), all_linears(qm.model.config).size() - 1);
  EXPECT_FALSE(qm.model.layers[0].wq.empty());
}

TEST(InteropHostile, AwqWrongShapeNanScaleAndBadConfig) {
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::Awq, "int4:g32:asym:f16scale");
    edit_tensors(dir, [](auto& ts) { find(ts, kQ + ".qweight").tensor = Tensor::zeros(DType::I32, {8, 64}); });
    expect_error([&] { load_quantized(dir); }, {"model.safetensors", kQ + ".qweight", "expected I32 [64, 8]"});
  }
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::Awq, "int4:g32:asym:f16scale");
    edit_tensors(dir, [](auto& ts) { set_scale(ts, kQ + ".scales", std::numeric_limits<float>::quiet_NaN()); });
    expect_error([&] { load_quantized(dir); }, {"model.safetensors", kQ + ".scales", "not finite and positive"});
  }
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::Awq, "int4:g32:asym:f16scale");
    edit_tensors(dir, [](auto& ts) { std::erase_if(ts, [](const auto& t) { return t.name == kQ + ".scales"; }); });
    expect_error([&] { load_quantized(dir); }, {"missing tensor", kQ + ".scales"});
  }
  // A group size the layers' widths do not divide is reported at the layer.
  for (const auto& [key, value, file, message] : std::vector<std::tuple<std::string, json, std::string, std::string>>{
           {"version", "gemv", "config.json", "\"version\" is \"gemv\""},
           {"bits", 3, "config.json", "\"bits\" 3"},
           {"zero_point", false, "config.json", "\"zero_point\" is false"},
           {"group_size", 48, "model.safetensors", "in of the group size 48"}}) {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::Awq, "int4:g32:asym:f16scale");
    const std::string k = key;  // a copy: lambdas may not capture structured bindings (clang 14)
    const json v = value;
    edit_config(dir, [&](json& qc) { qc[k] = v; });
    expect_error([&] { load_quantized(dir); }, {file, message});
  }
}

TEST(InteropHostile, CompressedTensorsShapeScalesAndConfig) {
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::CompressedTensors, "int4:g32:asym");
    edit_tensors(dir, [](auto& ts) { find(ts, kQ + ".weight_shape").tensor.template mutable_data<int64_t>()[1] = 65; });
    expect_error([&] { load_quantized(dir); }, {"model.safetensors", kQ + ".weight_shape", "[64, 65]"});
  }
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::CompressedTensors, "int4:g32:asym");
    edit_tensors(dir, [](auto& ts) { find(ts, kQ + ".weight_zero_point").tensor = Tensor::zeros(DType::I32, {64, 2}); });
    expect_error([&] { load_quantized(dir); }, {kQ + ".weight_zero_point", "expected I32 [8, 2]"});
  }
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::CompressedTensors, "int4:g32:asym");
    edit_tensors(dir, [](auto& ts) { set_scale(ts, kQ + ".weight_scale", 0.0f); });
    expect_error([&] { load_quantized(dir); }, {kQ + ".weight_scale", "not finite and positive"});
  }
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::CompressedTensors, "int4:g32:asym");
    edit_config(dir, [](json& qc) { qc["format"] = "float-quantized"; });
    expect_error([&] { load_quantized(dir); }, {"config.json", "\"format\" is \"float-quantized\""});
  }
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::CompressedTensors, "int4:g32:asym");
    edit_config(dir, [](json& qc) { qc["config_groups"]["group_0"]["input_activations"] = {{"num_bits", 8}}; });
    expect_error([&] { load_quantized(dir); }, {"config.json", "activation quantization is not supported"});
  }
  {
    TempDir tmp;
    const std::string dir = saved(tmp, QuantizedFormat::CompressedTensors, "int4:g32:asym");
    edit_config(dir, [](json& qc) { qc["ignore"] = {"re:model.layers.(0"}; });
    expect_error([&] { load_quantized(dir); }, {"config.json", "is not a regular expression"});
  }
}

TEST(InteropWriters, RefuseWhatTheyCannotHold) {
  TempDir tmp;
  const QuantizedModel nf4 = quantize_all(llama_model(31), "nf4:g32");
  expect_error([&] { save_gptq_folder(tmp.file("a"), nf4, {}, tokenizer_source(tmp)); }, {"integer schemes only"});
  expect_error([&] { save_awq_folder(tmp.file("b"), quantize_all(llama_model(31), "int8:g32:f16scale"), {},
                                     tokenizer_source(tmp)); },
               {"4-bit integer schemes only"});
  QuantizedModel mixed = quantize_all(llama_model(31), "int4:g32:f16scale");
  mixed.linears[0].weight = quant::quantize(quant::dequantize(mixed.linears[0].weight), quant::Scheme::parse("int4:g16"));
  expect_error([&] { save_gptq_folder(tmp.file("c"), mixed, {}, tokenizer_source(tmp)); }, {"one width, group size"});
  QuantizedModel acts = quantize_all(llama_model(31), "int4:g32:f16scale");
  acts.model.layers[0].act[0].mode = ActQuantMode::DynamicToken;
  expect_error([&] { save_compressed_tensors_folder(tmp.file("d"), acts, {}, tokenizer_source(tmp)); },
               {"activation quantizer"});
  EXPECT_FALSE(fs::exists(tmp.file("a")) || fs::exists(tmp.file("b")) || fs::exists(tmp.file("c")) ||
               fs::exists(tmp.file("d")));
}

// ---------------------------------------------------------------------------
// The real stories260K: 172-wide MLP rows do not pack as GPTQ / AWQ, so those
// layers are written as float; the model still runs to the same logits.

TEST(InteropStories, EveryFormatRunsToTheInMemoryLogits) {
  QF_REQUIRE_SHARED_DATA("stories260K/stories260K.bin");
  TempDir tmp;
  const std::string bin = test::shared_data_path("stories260K/stories260K.bin");
  const QuantizedModel qm = quantize_all(load_model(bin), "int4:g32:f16scale");
  const Tensor want = logits_of(dequantized_model(qm));
  tokenizer::Vocab vocab = tokenizer::load_sentencepiece_model(test::shared_data_path("stories260K/tok512.model"));
  for (QuantizedFormat f : {QuantizedFormat::Qforge, QuantizedFormat::Gptq, QuantizedFormat::Awq,
                            QuantizedFormat::CompressedTensors}) {
    SCOPED_TRACE(std::string(quantized_format_name(f)));
    const std::string dir = tmp.file(std::string(quantized_format_name(f)));
    save_quantized(f, dir, qm, vocab, bin);
    EXPECT_TRUE(same_bytes(want, logits_of(load_model(dir))));
    const size_t quantized = load_quantized(dir).linears.size();
    if (f == QuantizedFormat::Gptq || f == QuantizedFormat::Awq) {
      EXPECT_LT(quantized, qm.linears.size());  // the MLP layers went to float
      EXPECT_GT(quantized, 0u);
    } else {
      EXPECT_EQ(quantized, qm.linears.size());
    }
  }
}

}  // namespace
}  // namespace qf::model
