#include "model/gptq_checkpoint.h"

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "formats/int32_packing.h"
#include "model/checkpoint_support.h"
#include "model/linear_layers.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;
using formats::Int32Layout;
using nlohmann::json;

constexpr const char* kFormat = "GPTQ";

// What GPTQ's one quantization_config can say about every layer.
struct GptqParams {
  int bits = 4;
  int64_t group_size = 128;  // -1: one group per row
  bool sym = true;
  bool v2 = false;
};

bool packable(const LinearLayer& l, int bits) {
  return (l.in_features * bits) % 32 == 0 && (l.out_features * bits) % 32 == 0;
}

GptqParams common_params(const QuantizedModel& qm) {
  QF_CHECK(!qm.linears.empty(), "the model has no quantized layers to write as GPTQ");
  const quant::Scheme& first = qm.linears.front().weight.scheme;
  for (const QuantizedLinear& ql : qm.linears) {
    const quant::Scheme& s = ql.weight.scheme;
    QF_CHECK(s.format == quant::Format::Int, "layer \"{}\" is {}: GPTQ checkpoints hold integer schemes only",
             ql.name, s.to_string());
    QF_CHECK(s.bits == 2 || s.bits == 3 || s.bits == 4 || s.bits == 8,
             "layer \"{}\" is {}: GPTQ checkpoints hold 2, 3, 4 or 8 bits", ql.name, s.to_string());
    QF_CHECK(s.bits == first.bits && group_size_of(s) == group_size_of(first) && s.symmetric == first.symmetric,
             "layer \"{}\" is {} but \"{}\" is {}: a GPTQ checkpoint has one width, group size and symmetry (write "
             "the qforge format for mixed schemes)",
             ql.name, s.to_string(), qm.linears.front().name, first.to_string());
  }
  return {first.bits, group_size_of(first), first.symmetric, false};
}

// GPTQModel's "dynamic" rules: "-:" + a regex skips the modules it matches.
// Phi-3's qkv_proj / gate_up_proj: parts side by side along the output
// columns; one g_idx (q, k and v read one input, so GPTQ's act-order is shared).
const FuseAxes kGptqFuseAxes = {{".qweight", FuseAxis::Cols}, {".qzeros", FuseAxis::Cols},
                                {".scales", FuseAxis::Cols},  {".g_idx", FuseAxis::Same},
                                {".weight", FuseAxis::Rows},  {".bias", FuseAxis::Rows}};

std::string skip_rule(const std::string& name) {
  std::string escaped;
  for (char c : name) {
    if (c == '.') escaped += '\\';
    escaped += c;
  }
  return "-:^" + escaped + "$";
}

std::vector<formats::NamedTensor> gptq_tensors(const std::string& name, const IntLayer& l, const GptqParams& p,
                                               bool* rounded) {
  const int64_t words_in = l.in * p.bits / 32, words_out = l.out * p.bits / 32;
  // Codes [out, in]: each row is column o of qweight, a stream along the input.
  const std::vector<int32_t> by_out = formats::pack_int32_rows(l.codes, l.out, l.in, p.bits, Int32Layout::Stream,
                                                               words_in);
  const std::vector<int32_t> qweight = formats::transposed<int32_t>(by_out, l.out, words_in);
  const uint8_t mask = static_cast<uint8_t>((1u << p.bits) - 1u);
  std::vector<uint8_t> stored_zeros(l.zeros.size());
  for (size_t i = 0; i < l.zeros.size(); ++i)
    stored_zeros[i] = static_cast<uint8_t>((p.v2 ? l.zeros[i] : l.zeros[i] - 1) & mask);  // v1: z - 1, wrapping
  const std::vector<uint8_t> zeros_by_group = formats::transposed<uint8_t>(stored_zeros, l.out, l.groups);
  const std::vector<int32_t> qzeros =
      formats::pack_int32_rows(zeros_by_group, l.groups, l.out, p.bits, Int32Layout::Stream, words_out);
  return {{name + ".qweight", int32_tensor(qweight, {words_in, l.out})},
          {name + ".qzeros", int32_tensor(qzeros, {l.groups, words_out})},
          {name + ".scales", f16_scales_by_group(l, name, rounded)},
          {name + ".g_idx", int32_tensor(contiguous_groups(l.in, l.group_size), {l.in})}};
}

json gptq_config(const GptqParams& p, const std::vector<std::string>& float_layers) {
  json qc = {{"quant_method", "gptq"},
             {"bits", p.bits},
             {"group_size", p.group_size},
             {"desc_act", false},
             {"sym", p.sym},
             {"static_groups", false},
             {"true_sequential", true},
             {"lm_head", false},
             {"checkpoint_format", p.v2 ? "gptq_v2" : "gptq"}};
  if (!float_layers.empty()) {
    json dynamic = json::object();
    for (const std::string& name : float_layers) dynamic[skip_rule(name)] = json::object();
    qc["dynamic"] = std::move(dynamic);
  }
  return qc;
}

// ---------------------------------------------------------------------------
// Reading.

GptqParams parse_gptq_params(const json& qc) {
  GptqParams p;
  const std::string method = config_string(qc, "quant_method", "gptq");
  QF_CHECK(method == "gptq", "quantization_config \"quant_method\" is \"{}\", expected \"gptq\"", method);
  const int64_t bits = config_int(qc, "bits");
  QF_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8, "quantization_config \"bits\" {} (valid: 2, 3, 4, 8)",
           bits);
  p.bits = static_cast<int>(bits);
  p.group_size = config_int(qc, "group_size", -1);
  QF_CHECK(p.group_size == -1 || p.group_size > 0, "quantization_config \"group_size\" {} (valid: -1 or > 0)",
           p.group_size);
  p.sym = config_bool(qc, "sym", true);
  // GPTQModel wrote "format" before it settled on "checkpoint_format".
  const std::string format = config_string(qc, "checkpoint_format", config_string(qc, "format", "gptq"));
  QF_CHECK(format == "gptq" || format == "gptq_v2",
           "quantization_config \"checkpoint_format\" is \"{}\" (readable: gptq, gptq_v2)", format);
  p.v2 = format == "gptq_v2";
  return p;
}

struct ReadLayer {
  IntLayer layer;
  std::vector<int32_t> g_idx;
  bool f16_scales = true;
};

ReadLayer read_layer(TensorPool& pool, const LinearLayer& ll, const GptqParams& p) {
  const std::string& name = ll.name;
  const std::string why = fmt::format("layer {} is GPTQ-quantized", name);
  QF_CHECK((ll.in_features * p.bits) % 32 == 0 && (ll.out_features * p.bits) % 32 == 0,
           "layer \"{}\" of [out, in] = [{}, {}] cannot hold {}-bit GPTQ codes (in and out times bits must be "
           "multiples of 32)",
           name, ll.out_features, ll.in_features, p.bits);
  ReadLayer r;
  IntLayer& l = r.layer;
  l.out = ll.out_features;
  l.in = ll.in_features;
  l.bits = p.bits;
  l.group_size = p.group_size == -1 ? l.in : p.group_size;
  l.groups = (l.in + l.group_size - 1) / l.group_size;
  const int64_t words_in = l.in * p.bits / 32, words_out = l.out * p.bits / 32;

  const std::vector<int32_t> qweight = int32_words_of(name + ".qweight", pool.take(name + ".qweight", why),
                                                      {words_in, l.out});
  const std::vector<int32_t> qzeros = int32_words_of(name + ".qzeros", pool.take(name + ".qzeros", why),
                                                     {l.groups, words_out});
  const Tensor scales = pool.take(name + ".scales", why);
  r.f16_scales = scales.dtype() == DType::F16;
  const std::vector<float> by_group = scales_of(name + ".scales", scales, {l.groups, l.out});
  if (pool.has(name + ".g_idx")) {
    r.g_idx = int32_words_of(name + ".g_idx", pool.take(name + ".g_idx", why), {l.in});
    for (int64_t i = 0; i < l.in; ++i) {
      const int32_t g = r.g_idx[static_cast<size_t>(i)];
      QF_CHECK(g >= 0 && g < l.groups, "tensor \"{}.g_idx\": group {} at [{}] outside [0, {})", name, g, i,
               l.groups);
    }
  } else {
    r.g_idx = contiguous_groups(l.in, l.group_size);  // GPTQModel drops g_idx without act-order
  }
  QF_CHECK(!pool.has(name + ".weight"), "unexpected tensor \"{}.weight\" (the layer is GPTQ-quantized)", name);

  const std::vector<int32_t> by_out = formats::transposed<int32_t>(qweight, words_in, l.out);
  l.codes = formats::unpack_int32_rows(by_out, l.out, l.in, p.bits, Int32Layout::Stream, words_in);
  const std::vector<uint8_t> zeros_by_group =
      formats::unpack_int32_rows(qzeros, l.groups, l.out, p.bits, Int32Layout::Stream, words_out);
  const int32_t mask = (1 << p.bits) - 1, half = 1 << (p.bits - 1);
  l.scales.resize(static_cast<size_t>(l.out * l.groups));
  l.zeros.resize(l.scales.size());
  for (int64_t o = 0; o < l.out; ++o) {
    for (int64_t g = 0; g < l.groups; ++g) {
      const int32_t stored = zeros_by_group[static_cast<size_t>(g * l.out + o)];
      const int32_t z = p.v2 ? stored : (stored + 1) & mask;  // v1 stores z - 1
      QF_CHECK(!p.sym || z == half,
               "tensor \"{}.qzeros\": zero point {} at [{}, {}] in a symmetric (\"sym\": true) checkpoint (must be {})",
               name, z, g, o, half);
      const size_t i = static_cast<size_t>(o * l.groups + g);
      l.zeros[i] = z;
      l.scales[i] = by_group[static_cast<size_t>(g * l.out + o)];
    }
  }
  return r;
}

quant::Scheme scheme_of(const ReadLayer& r, const GptqParams& p) {
  quant::Scheme s;
  s.format = quant::Format::Int;
  s.bits = p.bits;
  s.symmetric = p.sym;
  s.full_range = p.sym && uses_code_zero(r.layer.codes);
  if (p.group_size == -1) {
    s.granularity = quant::Granularity::Channel;
  } else {
    s.granularity = quant::Granularity::Group;
    s.group_size = p.group_size;
  }
  s.scale_format = r.f16_scales ? quant::ScaleFormat::F16 : quant::ScaleFormat::F32;
  s.validate();
  return s;
}

json read_quantization_config(const fs::path& folder, const json& config, std::string* file) {
  const auto qc = config.find("quantization_config");
  if (qc != config.end()) {
    QF_CHECK(qc->is_object(), "\"quantization_config\" must be an object");
    *file = (folder / "config.json").string();
    return *qc;
  }
  // AutoGPTQ's own folders carry it only in quantize_config.json.
  *file = (folder / "quantize_config.json").string();
  std::error_code ec;
  QF_CHECK(fs::is_regular_file(*file, ec), "no quantization_config in config.json and no quantize_config.json");
  const json q = read_config_file(*file);
  QF_CHECK(q.is_object(), "must be a JSON object");
  return q;
}

}  // namespace

void save_gptq_folder(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                      const std::string& source, const GptqWriteOptions& options) {
  check_no_activation_quantizers(qm.model, kFormat);
  GptqParams p = common_params(qm);
  p.v2 = options.v2;
  const std::map<std::string, LinearLayer> known = linears_by_name(qm.model.config);
  const Model stored = with_bias_groups(qm.model);
  Model with_floats = stored;
  std::map<std::string, std::vector<formats::NamedTensor>> packed;
  std::vector<std::string> float_layers;
  bool rounded = false;
  for (const QuantizedLinear& ql : qm.linears) {
    const auto it = known.find(ql.name);
    QF_CHECK(it != known.end(), "\"{}\" is not a linear layer of this {} model", ql.name, qm.model.config.model_type);
    const LinearLayer& l = it->second;
    if (!packable(l, p.bits)) {
      // The one config has no layout for this shape; the dequantized float
      // weight keeps the model's outputs exactly.
      notice(fmt::format("layer {} [out, in] = [{}, {}] cannot be packed as {}-bit GPTQ (in and out times bits must "
                         "be multiples of 32); written as a float weight",
                         ql.name, l.out_features, l.in_features, p.bits));
      linear_weight(with_floats.layers[static_cast<size_t>(l.layer)], l.kind) =
          weight_to_stored(l, quant::dequantize(ql.weight));
      float_layers.push_back(ql.name);
      continue;
    }
    packed.emplace(ql.name, with_context(fmt::format("layer \"{}\"", ql.name), [&] {
                     return gptq_tensors(ql.name, to_int_layer(ql.weight), p, &rounded);
                   }));
  }
  std::set<std::string> names;
  for (const auto& [name, t] : packed) names.insert(name);
  // Layers the model keeps in float (--skip) must be skipped by loaders too.
  for (std::string& name : float_linears(qm)) float_layers.push_back(std::move(name));
  const std::vector<formats::NamedTensor> tensors = fuse_checkpoint_projections(
      qm.model.config,
      tensors_replacing_linears(with_floats, names, [&](const std::string& name) { return packed.at(name); }),
      kGptqFuseAxes);
  if (rounded) notice("GPTQ stores fp16 scales: F32 scales were rounded to the nearest fp16 value");
  const json qc = gptq_config(p, checkpoint_module_names(qm.model.config, float_layers));
  write_quantized_folder(dir, stored, qc, tensors, vocab, source, {{"quantize_config.json", qc}});
}

QuantizedModel load_gptq_folder(const std::string& path) {
  const fs::path folder = checkpoint_folder(path);
  const std::string config_file = (folder / "config.json").string();
  const json config = read_config_file(config_file);
  const ModelConfig mc = ModelConfig::from_hf_json(config, config_file);
  std::string qc_file;
  const GptqParams p = with_context(config_file, [&] {
    const json qc = read_quantization_config(folder, config, &qc_file);
    return with_context(qc_file, [&] { return parse_gptq_params(qc); });
  });
  std::string weights_file;
  TensorPool pool(split_checkpoint_projections(mc, read_folder_tensors(folder, &weights_file), kGptqFuseAxes));

  QuantizedModel qm;
  qm.info = {{"imported_from", "gptq"}};
  std::set<std::string> external;
  std::vector<formats::NamedTensor> float_weights;
  with_context(weights_file, [&] {
    for (const LinearLayer& l : all_linears(mc)) {
      if (!pool.has(l.name + ".qweight")) {
        // A float layer (skipped by "dynamic" or by our writer); anything else is missing.
        QF_CHECK(pool.has(l.name + ".weight"), "missing tensor \"{}.qweight\" (and no float \"{}.weight\")", l.name,
                 l.name);
        continue;
      }
      const ReadLayer r = read_layer(pool, l, p);
      external.insert(l.name + ".weight");
      if (r.g_idx != contiguous_groups(r.layer.in, r.layer.group_size)) {
        notice(fmt::format("{}: layer {} has an act-order g_idx, which contiguous groups cannot express; it is "
                           "dequantized to float",
                           weights_file, l.name));
        float_weights.push_back({l.name + ".weight", weight_to_stored(l, dequantize_int_layer(r.layer, r.g_idx))});
        external.erase(l.name + ".weight");
        continue;
      }
      qm.linears.push_back({l.name, with_context(fmt::format("layer \"{}\"", l.name), [&] {
                              return from_int_layer(r.layer, scheme_of(r, p));
                            })});
    }
  });
  std::vector<formats::NamedTensor> rest = pool.rest();
  for (formats::NamedTensor& t : float_weights) rest.push_back(std::move(t));
  qm.model = build_model(mc, rest, weights_file, external);
  return qm;
}

}  // namespace qf::model
