// Quantized checkpoints: save, strict load, dequantize-on-load, and hostile files.
#include "model/quantized_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/float_formats.h"
#include "formats/safetensors.h"
#include "model/linear_layers.h"
#include "test_models.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::expect_error;
using testing::TempDir;

// Hidden 80 and intermediate 96 leave ragged last groups for g32 and g64.
testing::LlamaDims llama_dims() {
  testing::LlamaDims d;
  d.hidden = 80;
  d.inter = 96;
  d.layers = 2;
  d.heads = 4;
  d.kv_heads = 2;
  d.head_dim = 20;
  d.bias = false;
  return d;
}

Model llama_model(const testing::LlamaDims& d, uint64_t seed) {
  return build_model(ModelConfig::from_hf_json(json::parse(testing::llama_config_json(d)), "mem"),
                     testing::random_llama_tensors(d, seed), "mem");
}

Model gpt2_model(uint64_t seed) {
  const testing::Gpt2Dims d;  // hidden 48: ragged for g32
  return build_model(ModelConfig::from_hf_json(json::parse(testing::gpt2_config_json(d)), "mem"),
                     testing::random_gpt2_tensors(d, seed), "mem");
}

using Plan = std::vector<std::pair<std::string, std::string>>;  // layer name, scheme

const Plan kLlamaPlan = {{"model.layers.0.self_attn.q_proj", "int4:g32"},
                         {"model.layers.0.self_attn.k_proj", "int3:g16:asym"},
                         {"model.layers.0.self_attn.o_proj", "int8:channel:f16scale"},
                         {"model.layers.0.mlp.down_proj", "nf4:g64"},
                         {"model.layers.1.mlp.gate_proj", "int2:g16:pow2scale"},
                         {"model.layers.1.mlp.up_proj", "int4:g32"}};
const Plan kGpt2Plan = {{"h.0.attn.c_attn", "int4:g32"},
                        {"h.0.attn.c_proj", "int3:g16:asym"},
                        {"h.0.mlp.c_fc", "nf4:g64"},
                        {"h.0.mlp.c_proj", "int2:g16:pow2scale"},
                        {"h.1.attn.c_attn", "int8:channel:f16scale"}};

LinearLayer find_linear(const ModelConfig& c, const std::string& name) {
  for (const LinearLayer& l : all_linears(c))
    if (l.name == name) return l;
  ADD_FAILURE() << "no layer " << name;
  return {};
}

// The float weights of quantized layers are dropped, as a quantizer would.
QuantizedModel quantize_some(const Model& m, const Plan& plan) {
  QuantizedModel qm;
  qm.model = m;
  for (const auto& [name, spec] : plan) {
    const LinearLayer l = find_linear(m.config, name);
    Tensor& w = linear_weight(qm.model.layers[static_cast<size_t>(l.layer)], l.kind);
    qm.linears.push_back({name, quant::quantize(weight_out_in(l, w), quant::Scheme::parse(spec))});
    w = Tensor();
  }
  qm.info = {{"method", "rtn"}, {"calibration", {{"samples", 0}}}};
  return qm;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.empty() || b.empty()) return a.empty() && b.empty();
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A source folder with a tokenizer file for save_quantized_folder to copy.
std::string tokenizer_source(const TempDir& tmp) {
  const std::string src = tmp.file("src");
  fs::create_directories(src);
  testing::write_text(src + "/tokenizer.json", "{}");
  return src;
}

std::string save(const TempDir& tmp, const std::string& name, const QuantizedModel& qm) {
  const std::string dir = tmp.file(name);
  save_quantized_folder(dir, qm, tokenizer::Vocab{}, tokenizer_source(tmp));
  return dir;
}

void expect_round_trip(const QuantizedModel& qm, const std::string& dir) {
  ASSERT_TRUE(is_qforge_quantized(dir));
  const QuantizedModel back = load_quantized_folder(dir);
  ASSERT_EQ(back.linears.size(), qm.linears.size());
  std::map<std::string, const QuantizedLinear*> by_name;
  for (const auto& ql : back.linears) by_name[ql.name] = &ql;
  for (const auto& ql : qm.linears) {
    ASSERT_TRUE(by_name.count(ql.name)) << ql.name;
    const quant::QuantizedTensor& a = ql.weight;
    const quant::QuantizedTensor& b = by_name[ql.name]->weight;
    EXPECT_EQ(a.scheme, b.scheme) << ql.name;
    EXPECT_EQ(a.shape, b.shape) << ql.name;
    EXPECT_TRUE(same_bytes(a.codes, b.codes)) << ql.name;
    EXPECT_TRUE(same_bytes(a.scales, b.scales)) << ql.name;
    EXPECT_TRUE(same_bytes(a.zero_points, b.zero_points)) << ql.name;
  }
  EXPECT_EQ(back.info, qm.info);

  // load_model dequantizes on load, into the stored orientation.
  const Model loaded = load_model(dir);
  for (const auto& ql : qm.linears) {
    const LinearLayer l = find_linear(loaded.config, ql.name);
    const Tensor& w = linear_weight(loaded.layers[static_cast<size_t>(l.layer)], l.kind);
    EXPECT_TRUE(same_bytes(w, weight_to_stored(l, quant::dequantize(ql.weight)))) << ql.name;
  }
  // Every other tensor is unchanged.
  std::map<std::string, Tensor> original;
  for (const auto& nt : qm.model.named_tensors()) original[nt.name] = nt.tensor;
  for (const auto& nt : loaded.named_tensors()) {
    if (!original.count(nt.name)) continue;  // a quantized weight, or a zero bias the writer added
    EXPECT_TRUE(same_bytes(nt.tensor, original[nt.name])) << nt.name;
  }
  for (size_t i = 0; i < qm.model.layers.size(); ++i) EXPECT_EQ(loaded.layers[i].act, qm.model.layers[i].act);
}

TEST(QuantizedCheckpoint, LlamaRoundTripsBitForBit) {
  TempDir tmp;
  const QuantizedModel qm = quantize_some(llama_model(llama_dims(), 1), kLlamaPlan);
  const std::string dir = save(tmp, "q", qm);
  expect_round_trip(qm, dir);
  EXPECT_TRUE(fs::is_regular_file(dir + "/tokenizer.json"));
  const json config = json::parse(read_bytes(dir + "/config.json"));
  const json& qc = config.at("quantization_config");
  EXPECT_EQ(qc.at("quant_method"), "qforge");
  EXPECT_EQ(qc.at("format_version"), 1);
  EXPECT_EQ(qc.at("method"), "rtn");
  EXPECT_EQ(qc.at("layers").at("model.layers.0.self_attn.k_proj"),
            json({{"scheme", "int3:g16:asym"}, {"shape", {40, 80}}}));
  EXPECT_EQ(config.at("attention_bias"), false);
  EXPECT_EQ(config.at("mlp_bias"), false);
  // Only asymmetric layers have zero points; quantized layers have no float weight.
  std::set<std::string> names;
  for (const auto& nt : formats::read_safetensors(dir + "/model.safetensors").tensors) names.insert(nt.name);
  EXPECT_TRUE(names.count("model.layers.0.self_attn.k_proj.weight_zeros"));
  EXPECT_FALSE(names.count("model.layers.0.self_attn.q_proj.weight_zeros"));
  EXPECT_FALSE(names.count("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(names.count("model.layers.0.self_attn.v_proj.weight"));
}

TEST(QuantizedCheckpoint, Gpt2RoundTripsAndTransposesBack) {
  TempDir tmp;
  const QuantizedModel qm = quantize_some(gpt2_model(2), kGpt2Plan);
  const std::string dir = save(tmp, "q", qm);
  expect_round_trip(qm, dir);
  // Codes are [out, in] even for Conv1D; the loaded weight is [in, out] again.
  const auto st = formats::read_safetensors(dir + "/model.safetensors");
  for (const auto& nt : st.tensors) {
    if (nt.name == "h.0.mlp.c_fc.weight_codes") {
      EXPECT_EQ(nt.tensor.dim(0), 192);
    }
  }
  EXPECT_EQ(load_model(dir).layers[0].w_up.shape(), (Shape{48, 192}));
}

TEST(QuantizedCheckpoint, ActivationQuantizersRoundTrip) {
  TempDir tmp;
  Model m = llama_model(llama_dims(), 3);
  m.layers[0].act[static_cast<int>(InputSite::AttnIn)] = {ActQuantMode::DynamicToken, 8, true, 0.0f, 0};
  m.layers[1].act[static_cast<int>(InputSite::FfnHidden)] = {ActQuantMode::StaticTensor, 8, false, 0.0123f, 130};
  m.layers[1].act[static_cast<int>(InputSite::AttnOut)] = {ActQuantMode::StaticTensor, 16, true, 3.5e-5f, 0};
  const QuantizedModel qm = quantize_some(m, kLlamaPlan);
  const std::string dir = save(tmp, "q", qm);
  expect_round_trip(qm, dir);
  const json acts = json::parse(read_bytes(dir + "/config.json")).at("quantization_config").at("activations");
  EXPECT_EQ(acts.size(), 3u);
  EXPECT_EQ(acts.at("model.layers.0.attn_in").at("mode"), "dynamic-token");
  EXPECT_EQ(acts.at("model.layers.1.ffn_hidden").at("zero_point"), 130);

  Model g = gpt2_model(4);
  g.layers[1].act[static_cast<int>(InputSite::FfnIn)] = {ActQuantMode::StaticTensor, 8, true, 0.25f, 0};
  const QuantizedModel gq = quantize_some(g, kGpt2Plan);
  const std::string gdir = save(tmp, "g", gq);
  expect_round_trip(gq, gdir);
  EXPECT_TRUE(json::parse(read_bytes(gdir + "/config.json"))
                  .at("quantization_config")
                  .at("activations")
                  .contains("h.1.ffn_in"));
}

TEST(QuantizedCheckpoint, BiasCorrectedLlamaSetsTransformersFlags) {
  TempDir tmp;
  const testing::LlamaDims d = llama_dims();
  Model m = llama_model(d, 5);
  testing::RandomTensors r(6);
  r.add("bo", {d.hidden}, 0.1f);
  r.add("b_down", {d.hidden}, 0.1f);
  m.layers[0].bo = r.tensors[0].tensor;
  m.layers[1].b_down = r.tensors[1].tensor;
  const QuantizedModel qm = quantize_some(m, kLlamaPlan);
  const std::string dir = save(tmp, "q", qm);
  const json config = json::parse(read_bytes(dir + "/config.json"));
  EXPECT_EQ(config.at("attention_bias"), true);
  EXPECT_EQ(config.at("mlp_bias"), true);
  expect_round_trip(qm, dir);
  const Model loaded = load_model(dir);
  EXPECT_TRUE(same_bytes(loaded.layers[0].bo, m.layers[0].bo));
  EXPECT_TRUE(same_bytes(loaded.layers[1].b_down, m.layers[1].b_down));
  // The rest of each group is present and zero, as transformers expects.
  for (const Tensor* t : {&loaded.layers[0].bq, &loaded.layers[1].bo, &loaded.layers[0].b_gate,
                          &loaded.layers[1].b_up, &loaded.layers[0].b_down}) {
    ASSERT_FALSE(t->empty());
    for (float v : t->to_f32_vector()) EXPECT_EQ(v, 0.0f);
  }
}

TEST(QuantizedCheckpoint, SavingTwiceGivesIdenticalBytes) {
  TempDir tmp;
  Model m = llama_model(llama_dims(), 7);
  m.layers[1].act[static_cast<int>(InputSite::FfnIn)] = {ActQuantMode::StaticTensor, 8, false, 0.1f, 3};
  const QuantizedModel qm = quantize_some(m, kLlamaPlan);
  const std::string a = save(tmp, "a", qm), b = save(tmp, "b", qm);
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.json"})
    EXPECT_EQ(read_bytes(a + "/" + f), read_bytes(b + "/" + f)) << f;
}

TEST(QuantizedCheckpoint, InvalidModelsAreRefusedBeforeWriting) {
  TempDir tmp;
  const QuantizedModel good = quantize_some(llama_model(llama_dims(), 8), kLlamaPlan);
  const std::string src = tokenizer_source(tmp);
  auto refused = [&](const std::string& name, const std::function<void(QuantizedModel&)>& edit,
                     std::initializer_list<std::string_view> fragments) {
    QuantizedModel qm = good;
    edit(qm);
    const std::string dir = tmp.file(name);
    expect_error([&] { save_quantized_folder(dir, qm, tokenizer::Vocab{}, src); }, fragments);
    EXPECT_FALSE(fs::exists(dir + "/model.safetensors")) << name;
    EXPECT_FALSE(fs::exists(dir + "/config.json")) << name;
  };
  refused("unknown", [](QuantizedModel& q) { q.linears[0].name = "model.layers.7.self_attn.q_proj"; },
          {"\"model.layers.7.self_attn.q_proj\" is not a linear layer"});
  refused("twice", [](QuantizedModel& q) { q.linears.push_back(q.linears[0]); }, {"quantized twice"});
  refused("shape", [](QuantizedModel& q) { q.linears[0].name = "model.layers.0.self_attn.k_proj"; },
          {"model.layers.0.self_attn.k_proj", "expected [out, in] = [40, 80]"});
  refused("codes", [](QuantizedModel& q) { q.linears[1].weight.codes = Tensor::zeros(DType::U8, {40, 2}); },
          {"model.layers.0.self_attn.k_proj", "quantized codes"});
  refused("scale", [](QuantizedModel& q) {
    q.linears[0].weight.scales = q.linears[0].weight.scales.clone();
    q.linears[0].weight.scales.mutable_data<float>()[5] = -1.0f;
  }, {"model.layers.0.self_attn.q_proj.weight_scales", "not finite and positive"});
  refused("reserved", [](QuantizedModel& q) { q.info["layers"] = 1; }, {"reserved key \"layers\""});
  refused("info", [](QuantizedModel& q) { q.info = json::array(); }, {"must be a JSON object"});
  refused("act", [](QuantizedModel& q) { q.model.layers[0].act[1] = {ActQuantMode::StaticTensor, 8, true, 0.0f, 0}; },
          {"model.layers.0.attn_out", "finite and positive"});
  refused("float", [](QuantizedModel& q) { q.model.layers[1].wv = Tensor(); },
          {"model.layers.1.self_attn.v_proj", "neither a quantized nor a float weight"});
}

// ---------------------------------------------------------------------------
// Hostile files: each edit of a good folder must give one qf::Error naming the key or tensor.

class HostileFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    Model m = llama_model(llama_dims(), 9);
    m.layers[0].act[0] = {ActQuantMode::DynamicToken, 8, true, 0.0f, 0};
    qm_ = quantize_some(m, kLlamaPlan);
    good_ = save(tmp_, "good", qm_);
  }

  // A fresh copy of the good folder.
  std::string copy() {
    const std::string dir = tmp_.file("case" + std::to_string(cases_++));
    fs::copy(good_, dir, fs::copy_options::recursive);
    return dir;
  }

  void config_case(const std::function<void(json&)>& edit, std::initializer_list<std::string_view> fragments) {
    const std::string dir = copy();
    json j = json::parse(read_bytes(dir + "/config.json"));
    edit(j);
    testing::write_text(dir + "/config.json", j.dump(2));
    expect_error([&] { load_quantized_folder(dir); }, fragments);
  }

  void tensor_case(const std::function<void(std::vector<formats::NamedTensor>&)>& edit,
                   std::initializer_list<std::string_view> fragments) {
    const std::string dir = copy();
    const std::string file = dir + "/model.safetensors";
    std::vector<formats::NamedTensor> tensors = formats::read_safetensors(file).tensors;
    edit(tensors);
    formats::write_safetensors(file, tensors);
    expect_error([&] { load_quantized_folder(dir); }, fragments);
    expect_error([&] { load_model(dir); }, fragments);
  }

  static Tensor& find(std::vector<formats::NamedTensor>& ts, const std::string& name) {
    for (auto& nt : ts)
      if (nt.name == name) return nt.tensor;
    ADD_FAILURE() << "no tensor " << name;
    return ts.front().tensor;
  }
  static void erase(std::vector<formats::NamedTensor>& ts, const std::string& name) {
    std::erase_if(ts, [&](const formats::NamedTensor& nt) { return nt.name == name; });
  }

  TempDir tmp_;
  QuantizedModel qm_;
  std::string good_;
  int cases_ = 0;
};

const std::string kQ = "model.layers.0.self_attn.q_proj";  // int4:g32
const std::string kK = "model.layers.0.self_attn.k_proj";  // int3:g16:asym
const std::string kO = "model.layers.0.self_attn.o_proj";  // int8:channel:f16scale

TEST_F(HostileFolder, MissingAndExtraTensors) {
  tensor_case([](auto& ts) { erase(ts, kQ + ".weight_codes"); }, {"model.safetensors", kQ + ".weight_codes", "missing"});
  tensor_case([](auto& ts) { erase(ts, kK + ".weight_scales"); }, {kK + ".weight_scales", "missing"});
  tensor_case([](auto& ts) { erase(ts, kK + ".weight_zeros"); }, {kK + ".weight_zeros", "missing"});
  tensor_case([](auto& ts) { ts.push_back({kQ + ".weight", Tensor::zeros(DType::F32, {80, 80})}); },
              {"unexpected tensor", kQ + ".weight\""});
  tensor_case([](auto& ts) { ts.push_back({kQ + ".weight_zeros", Tensor::zeros(DType::U8, {80, 3})}); },
              {"unexpected tensor", kQ + ".weight_zeros", "no zero points"});
  tensor_case([](auto& ts) { ts.push_back({"model.layers.1.self_attn.q_proj.weight_codes", Tensor::zeros(DType::U8, {1})}); },
              {"unexpected tensor", "model.layers.1.self_attn.q_proj.weight_codes"});
  tensor_case([](auto& ts) { ts.push_back({"model.layers.0.extra.weight", Tensor::zeros(DType::F32, {2})}); },
              {"unexpected tensor", "model.layers.0.extra.weight"});
  // A quantized layer's float weight cannot be absent for an unquantized layer.
  tensor_case([](auto& ts) { erase(ts, "model.layers.0.self_attn.v_proj.weight"); },
              {"missing tensor \"model.layers.0.self_attn.v_proj.weight\""});
}

TEST_F(HostileFolder, WrongDtypeOrShape) {
  tensor_case([](auto& ts) { find(ts, kQ + ".weight_scales") = find(ts, kQ + ".weight_scales").cast(DType::F16); },
              {kQ + ".weight_scales", "is F16 [80, 3], expected F32 [80, 3]"});
  tensor_case([](auto& ts) { find(ts, kQ + ".weight_codes") = Tensor::zeros(DType::U8, {80, 41}); },
              {kQ + ".weight_codes", "[80, 41]", "[80, 40]"});
  tensor_case([](auto& ts) { find(ts, kK + ".weight_zeros") = Tensor::zeros(DType::I8, {40, 5}); },
              {kK + ".weight_zeros", "I8"});
  tensor_case([](auto& ts) { find(ts, "model.norm.weight") = Tensor::zeros(DType::F32, {3}); },
              {"model.norm.weight", "shape [3]"});
}

TEST_F(HostileFolder, BadScalesAndZeroPoints) {
  tensor_case([](auto& ts) {
    Tensor s = find(ts, kQ + ".weight_scales").clone();
    s.mutable_data<float>()[4] = std::numeric_limits<float>::quiet_NaN();
    find(ts, kQ + ".weight_scales") = s;
  }, {kQ + ".weight_scales", "scale nan at [1, 1]", "not finite and positive"});
  tensor_case([](auto& ts) {
    Tensor s = find(ts, kO + ".weight_scales").clone();
    s.mutable_data<uint16_t>()[2] = f32_to_f16(0.0f);
    find(ts, kO + ".weight_scales") = s;
  }, {kO + ".weight_scales", "[2, 0]", "not finite and positive"});
  tensor_case([](auto& ts) {
    Tensor s = find(ts, kO + ".weight_scales").clone();
    s.mutable_data<uint16_t>()[0] = 0x7c00;  // +inf
    find(ts, kO + ".weight_scales") = s;
  }, {kO + ".weight_scales", "scale inf"});
  tensor_case([](auto& ts) {
    Tensor z = find(ts, kK + ".weight_zeros").clone();
    z.mutable_data<uint8_t>()[7] = 8;  // int3 codes are 0..7
    find(ts, kK + ".weight_zeros") = z;
  }, {kK + ".weight_zeros", "zero point 8", "[0, 7]"});
}

TEST_F(HostileFolder, BadLayerEntries) {
  auto layers = [](json& j) -> json& { return j["quantization_config"]["layers"]; };
  config_case([&](json& j) { layers(j)[kQ]["scheme"] = "int9x:g32"; }, {"config.json", kQ, "int9x"});
  config_case([&](json& j) { layers(j)[kQ]["scheme"] = 4; }, {kQ, "\"scheme\" must be a string"});
  config_case([&](json& j) { layers(j)[kQ]["shape"] = {80, 81}; }, {kQ, "\"shape\" [80,81]", "[80,80]"});
  config_case([&](json& j) { layers(j)[kQ].erase("shape"); }, {kQ, "missing \"shape\""});
  config_case([&](json& j) { layers(j)[kQ]["group"] = 3; }, {kQ, "unknown key \"group\""});
  config_case([&](json& j) { layers(j)["model.layers.0.self_attn.qq_proj"] = layers(j)[kQ]; },
              {"\"model.layers.0.self_attn.qq_proj\" is not a linear layer"});
  // A different scheme than the tensors were written with: shapes disagree.
  config_case([&](json& j) { layers(j)[kQ]["scheme"] = "int4:g16"; }, {kQ + ".weight_scales", "[80, 5]"});
  // A layer the config forgets leaves its tensors stray.
  config_case([&](json& j) { layers(j).erase(kQ); }, {"unexpected tensor", kQ + ".weight_"});
  config_case([](json& j) { j["quantization_config"]["format_version"] = 2; }, {"\"format_version\" 2"});
  config_case([](json& j) { j["quantization_config"].erase("layers"); }, {"quantization_config", "missing \"layers\""});
  config_case([](json& j) { j["quantization_config"]["layers"] = json::array(); }, {"\"layers\" must be an object"});
}

TEST_F(HostileFolder, BadActivationEntries) {
  auto act = [](json& j) -> json& { return j["quantization_config"]["activations"]["model.layers.0.attn_in"]; };
  const std::string key = "model.layers.0.attn_in";
  config_case([&](json& j) { act(j)["mode"] = "per-channel"; }, {key, "unknown mode \"per-channel\""});
  config_case([&](json& j) { act(j)["bits"] = 1; }, {key, "bits 1 out of range"});
  config_case([&](json& j) { act(j)["bits"] = 17; }, {key, "bits 17 out of range"});
  config_case([&](json& j) { act(j)["bits"] = "8"; }, {key, "\"bits\" must be an integer"});
  config_case([&](json& j) { act(j)["scale"] = 0.5; }, {key, "no stored scale"});
  auto static_entry = [&](json& j, const json& scale) {
    act(j) = {{"mode", "static-tensor"}, {"bits", 8}, {"symmetric", false}, {"scale", scale}, {"zero_point", 3}};
  };
  config_case([&](json& j) { static_entry(j, -0.5); }, {key, "static scale -0.5"});
  config_case([&](json& j) { static_entry(j, 0.0); }, {key, "static scale 0"});
  config_case([&](json& j) { static_entry(j, 1e300); }, {key, "static scale 1e+300"});  // beyond float: refused before any cast
  config_case([&](json& j) { static_entry(j, 0.5); act(j)["zero_point"] = 256; }, {key, "zero point 256"});
  config_case([&](json& j) { static_entry(j, 0.5); act(j).erase("zero_point"); }, {key, "missing \"zero_point\""});
  config_case([](json& j) { j["quantization_config"]["activations"]["model.layers.2.attn_in"] = json::object(); },
              {"unknown site \"model.layers.2.attn_in\""});
  config_case([](json& j) { j["quantization_config"]["activations"]["model.layers.0.qkv_in"] = json::object(); },
              {"unknown site \"model.layers.0.qkv_in\""});
}

TEST_F(HostileFolder, GarbageNeverCrashes) {
  const std::string dir = copy();
  const std::string st = read_bytes(dir + "/model.safetensors");
  testing::write_text(dir + "/model.safetensors", st.substr(0, st.size() / 2));
  expect_error([&] { load_quantized_folder(dir); }, {"model.safetensors"});
  const std::string bad = copy();
  testing::write_text(bad + "/config.json", "{\"quantization_config\": {\"quant_method\": \"qforge\"");
  EXPECT_FALSE(is_qforge_quantized(bad));
  expect_error([&] { load_quantized_folder(bad); }, {"config.json"});
  // Not a quantized folder at all.
  const std::string plain = tmp_.file("plain");
  testing::write_hf_folder(plain, testing::llama_config_json(llama_dims()),
                           testing::random_llama_tensors(llama_dims(), 1));
  EXPECT_FALSE(is_qforge_quantized(plain));
  expect_error([&] { load_quantized_folder(plain); }, {"missing \"quantization_config\""});
}

}  // namespace
}  // namespace qf::model
