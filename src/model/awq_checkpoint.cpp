#include "model/awq_checkpoint.h"

#include <algorithm>
#include <cctype>
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

constexpr int kBits = 4;
constexpr int64_t kPack = 8;  // codes per int32 word

bool packable(const LinearLayer& l, int64_t group_size) {
  return l.out_features % kPack == 0 && (group_size == -1 || l.in_features % group_size == 0);
}

int64_t common_group_size(const QuantizedModel& qm) {
  QF_CHECK(!qm.linears.empty(), "the model has no quantized layers to write as AWQ");
  const quant::Scheme& first = qm.linears.front().weight.scheme;
  for (const QuantizedLinear& ql : qm.linears) {
    const quant::Scheme& s = ql.weight.scheme;
    QF_CHECK(s.format == quant::Format::Int && s.bits == kBits,
             "layer \"{}\" is {}: AWQ gemm checkpoints hold 4-bit integer schemes only", ql.name, s.to_string());
    QF_CHECK(group_size_of(s) == group_size_of(first),
             "layer \"{}\" is {} but \"{}\" is {}: an AWQ checkpoint has one group size (write the qforge format for "
             "mixed schemes)",
             ql.name, s.to_string(), qm.linears.front().name, first.to_string());
  }
  return group_size_of(first);
}

std::vector<formats::NamedTensor> awq_tensors(const std::string& name, const IntLayer& l, bool* rounded) {
  const int64_t words = l.out / kPack;
  const std::vector<uint8_t> codes_by_in = formats::transposed<uint8_t>(l.codes, l.out, l.in);
  const std::vector<int32_t> qweight =
      formats::pack_int32_rows(codes_by_in, l.in, l.out, kBits, Int32Layout::AwqOrder, words);
  std::vector<uint8_t> zeros(l.zeros.begin(), l.zeros.end());
  const std::vector<uint8_t> zeros_by_group = formats::transposed<uint8_t>(zeros, l.out, l.groups);
  const std::vector<int32_t> qzeros =
      formats::pack_int32_rows(zeros_by_group, l.groups, l.out, kBits, Int32Layout::AwqOrder, words);
  return {{name + ".qweight", int32_tensor(qweight, {l.in, words})},
          {name + ".qzeros", int32_tensor(qzeros, {l.groups, words})},
          {name + ".scales", f16_scales_by_group(l, name, rounded)}};
}

struct AwqParams {
  int64_t group_size = 128;
};

AwqParams parse_awq_params(const json& qc) {
  const std::string method = config_string(qc, "quant_method");
  QF_CHECK(method == "awq", "quantization_config \"quant_method\" is \"{}\", expected \"awq\"", method);
  // AutoAWQ wrote "w_bit" / "q_group_size" in its own quant_config.json.
  const int64_t bits = config_int(qc, "bits", config_int(qc, "w_bit", -1));
  QF_CHECK(bits == kBits, "quantization_config \"bits\" {}: AWQ gemm checkpoints are 4-bit", bits);
  std::string version = config_string(qc, "version", "gemm");
  std::transform(version.begin(), version.end(), version.begin(), [](unsigned char c) { return std::tolower(c); });
  QF_CHECK(version == "gemm", "quantization_config \"version\" is \"{}\" (readable: gemm)", version);
  QF_CHECK(config_bool(qc, "zero_point", true),
           "quantization_config \"zero_point\" is false: only AWQ with zero points (the gemm layout) is readable");
  AwqParams p;
  p.group_size = config_int(qc, "group_size", config_int(qc, "q_group_size", -1));
  QF_CHECK(p.group_size == -1 || p.group_size > 0, "quantization_config \"group_size\" {} (valid: -1 or > 0)",
           p.group_size);
  return p;
}

IntLayer read_layer(TensorPool& pool, const LinearLayer& ll, const AwqParams& p) {
  const std::string& name = ll.name;
  const std::string why = fmt::format("layer {} is AWQ-quantized", name);
  IntLayer l;
  l.out = ll.out_features;
  l.in = ll.in_features;
  l.bits = kBits;
  l.group_size = p.group_size == -1 ? l.in : p.group_size;
  QF_CHECK(l.out % kPack == 0 && l.in % l.group_size == 0,
           "layer \"{}\" of [out, in] = [{}, {}] cannot hold AWQ codes (out must be a multiple of 8 and in of the "
           "group size {})",
           name, l.out, l.in, l.group_size);
  l.groups = l.in / l.group_size;
  const int64_t words = l.out / kPack;
  const std::vector<int32_t> qweight = int32_words_of(name + ".qweight", pool.take(name + ".qweight", why),
                                                      {l.in, words});
  const std::vector<int32_t> qzeros = int32_words_of(name + ".qzeros", pool.take(name + ".qzeros", why),
                                                     {l.groups, words});
  const std::vector<float> by_group = scales_of(name + ".scales", pool.take(name + ".scales", why), {l.groups, l.out});
  QF_CHECK(!pool.has(name + ".weight"), "unexpected tensor \"{}.weight\" (the layer is AWQ-quantized)", name);
  const std::vector<uint8_t> codes_by_in =
      formats::unpack_int32_rows(qweight, l.in, l.out, kBits, Int32Layout::AwqOrder, words);
  l.codes = formats::transposed<uint8_t>(codes_by_in, l.in, l.out);
  const std::vector<uint8_t> zeros_by_group =
      formats::unpack_int32_rows(qzeros, l.groups, l.out, kBits, Int32Layout::AwqOrder, words);
  l.scales.resize(static_cast<size_t>(l.out * l.groups));
  l.zeros.resize(l.scales.size());
  for (int64_t o = 0; o < l.out; ++o) {
    for (int64_t g = 0; g < l.groups; ++g) {
      const size_t i = static_cast<size_t>(o * l.groups + g), j = static_cast<size_t>(g * l.out + o);
      l.zeros[i] = zeros_by_group[j];
      l.scales[i] = by_group[j];
    }
  }
  return l;
}

quant::Scheme scheme_of(const IntLayer& l, const AwqParams& p, bool f16_scales) {
  quant::Scheme s;
  s.format = quant::Format::Int;
  s.bits = kBits;
  s.symmetric = std::all_of(l.zeros.begin(), l.zeros.end(), [](int32_t z) { return z == 1 << (kBits - 1); });
  s.full_range = s.symmetric && uses_code_zero(l.codes);
  if (p.group_size == -1) {
    s.granularity = quant::Granularity::Channel;
  } else {
    s.granularity = quant::Granularity::Group;
    s.group_size = p.group_size;
  }
  s.scale_format = f16_scales ? quant::ScaleFormat::F16 : quant::ScaleFormat::F32;
  s.validate();
  return s;
}

// Phi-3's qkv_proj / gate_up_proj: parts side by side along the output columns.
const FuseAxes kAwqFuseAxes = {{".qweight", FuseAxis::Cols}, {".qzeros", FuseAxis::Cols},
                               {".scales", FuseAxis::Cols},  {".weight", FuseAxis::Rows},
                               {".bias", FuseAxis::Rows}};

}  // namespace

void save_awq_folder(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                     const std::string& source) {
  check_no_activation_quantizers(qm.model, "AWQ");
  const int64_t group_size = common_group_size(qm);
  const std::map<std::string, LinearLayer> known = linears_by_name(qm.model.config);
  const Model stored = with_bias_groups(qm.model);
  Model with_floats = stored;
  std::map<std::string, std::vector<formats::NamedTensor>> packed;
  json not_converted = json::array();
  bool rounded = false;
  for (const QuantizedLinear& ql : qm.linears) {
    const auto it = known.find(ql.name);
    QF_CHECK(it != known.end(), "\"{}\" is not a linear layer of this {} model", ql.name, qm.model.config.model_type);
    const LinearLayer& l = it->second;
    if (!packable(l, group_size)) {
      notice(fmt::format("layer {} [out, in] = [{}, {}] cannot be packed as AWQ (out must be a multiple of 8, in of "
                         "the group size); written as a float weight",
                         ql.name, l.out_features, l.in_features));
      linear_weight(with_floats.layers[static_cast<size_t>(l.layer)], l.kind) =
          weight_to_stored(l, quant::dequantize(ql.weight));
      not_converted.push_back(ql.name);
      continue;
    }
    packed.emplace(ql.name, with_context(fmt::format("layer \"{}\"", ql.name),
                                         [&] { return awq_tensors(ql.name, to_int_layer(ql.weight), &rounded); }));
  }
  std::set<std::string> names;
  for (const auto& [name, t] : packed) names.insert(name);
  // Layers the model keeps in float (--skip) must be skipped by loaders too.
  for (std::string& name : float_linears(qm)) not_converted.push_back(std::move(name));
  const std::vector<formats::NamedTensor> tensors = fuse_checkpoint_projections(
      qm.model.config,
      tensors_replacing_linears(with_floats, names, [&](const std::string& name) { return packed.at(name); }),
      kAwqFuseAxes);
  if (rounded) notice("AWQ stores fp16 scales: F32 scales were rounded to the nearest fp16 value");
  not_converted = checkpoint_module_names(qm.model.config, not_converted.get<std::vector<std::string>>());
  const json qc = {{"quant_method", "awq"},
                   {"bits", kBits},
                   {"group_size", group_size},
                   {"zero_point", true},
                   {"version", "gemm"},
                   {"modules_to_not_convert", not_converted.empty() ? json(nullptr) : not_converted}};
  write_quantized_folder(dir, stored, qc, tensors, vocab, source);
}

QuantizedModel load_awq_folder(const std::string& path) {
  const fs::path folder = checkpoint_folder(path);
  const std::string config_file = (folder / "config.json").string();
  const json config = read_config_file(config_file);
  const ModelConfig mc = ModelConfig::from_hf_json(config, config_file);
  const AwqParams p = with_context(config_file, [&] {
    const auto qc = config.find("quantization_config");
    QF_CHECK(qc != config.end() && qc->is_object(), "no \"quantization_config\" object");
    return parse_awq_params(*qc);
  });
  std::string weights_file;
  TensorPool pool(split_checkpoint_projections(mc, read_folder_tensors(folder, &weights_file), kAwqFuseAxes));
  QuantizedModel qm;
  qm.info = {{"imported_from", "awq"}};
  std::set<std::string> external;
  with_context(weights_file, [&] {
    for (const LinearLayer& l : all_linears(mc)) {
      if (!pool.has(l.name + ".qweight")) {
        QF_CHECK(pool.has(l.name + ".weight"), "missing tensor \"{}.qweight\" (and no float \"{}.weight\")", l.name,
                 l.name);
        continue;
      }
      const bool f16 = pool.has(l.name + ".scales") && pool.take(l.name + ".scales", "").dtype() == DType::F16;
      const IntLayer il = read_layer(pool, l, p);
      qm.linears.push_back({l.name, with_context(fmt::format("layer \"{}\"", l.name), [&] {
                              return from_int_layer(il, scheme_of(il, p, f16));
                            })});
      external.insert(l.name + ".weight");
    }
  });
  qm.model = build_model(mc, pool.rest(), weights_file, external);
  return qm;
}

}  // namespace qf::model
