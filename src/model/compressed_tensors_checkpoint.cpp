#include "model/compressed_tensors_checkpoint.h"

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/regex.h"
#include "formats/int32_packing.h"
#include "model/checkpoint_support.h"
#include "model/linear_layers.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;
using formats::Int32Layout;
using nlohmann::json;

constexpr const char* kMethod = "compressed-tensors";
constexpr const char* kPackQuantized = "pack-quantized";

// What a config group's "weights" entry says.
struct WeightArgs {
  int bits = 4;
  bool symmetric = true;
  int64_t group_size = 0;  // 0: strategy "channel"
  auto key() const { return std::tuple(bits, symmetric, group_size); }
};

WeightArgs args_of(const quant::Scheme& s) {
  return {s.bits, s.symmetric, s.granularity == quant::Granularity::Group ? s.group_size : 0};
}

json weights_json(const WeightArgs& a) {
  return {{"num_bits", a.bits},
          {"type", "int"},
          {"symmetric", a.symmetric},
          {"strategy", a.group_size > 0 ? "group" : "channel"},
          {"group_size", a.group_size > 0 ? json(a.group_size) : json(nullptr)},
          {"dynamic", false},
          {"actorder", nullptr},
          {"observer", "minmax"},
          {"observer_kwargs", json::object()},
          {"block_structure", nullptr}};
}

std::vector<formats::NamedTensor> ct_tensors(const std::string& name, const quant::QuantizedTensor& q) {
  const IntLayer l = to_int_layer(q);
  const int64_t words = formats::int32_words(l.in, l.bits, Int32Layout::WordAligned);
  std::vector<formats::NamedTensor> out;
  out.push_back({name + ".weight_packed",
                 int32_tensor(formats::pack_int32_rows(l.codes, l.out, l.in, l.bits, Int32Layout::WordAligned, words),
                              {l.out, words})});
  Tensor scale = Tensor::from_f32(l.scales, {l.out, l.groups});
  // Decoded F16 scales are fp16 values: F16 keeps them exactly.
  if (q.scheme.scale_format == quant::ScaleFormat::F16) scale = scale.cast(DType::F16);
  out.push_back({name + ".weight_scale", scale});
  if (!q.scheme.symmetric) {
    const std::vector<uint8_t> zeros(l.zeros.begin(), l.zeros.end());
    const std::vector<uint8_t> by_group = formats::transposed<uint8_t>(zeros, l.out, l.groups);
    const int64_t zwords = formats::int32_words(l.out, l.bits, Int32Layout::WordAligned);
    const std::vector<int32_t> packed =
        formats::pack_int32_rows(by_group, l.groups, l.out, l.bits, Int32Layout::WordAligned, zwords);
    out.push_back({name + ".weight_zero_point",
                   int32_tensor(formats::transposed<int32_t>(packed, l.groups, zwords), {zwords, l.groups})});
  }
  Tensor shape = Tensor::zeros(DType::I64, {2});
  shape.mutable_data<int64_t>()[0] = l.out;
  shape.mutable_data<int64_t>()[1] = l.in;
  out.push_back({name + ".weight_shape", shape});
  return out;
}

// ---------------------------------------------------------------------------
// Reading.

// compressed-tensors matches "re:" targets with Python's re.match (anchored at
// the start only), anything else against the module name or its class.
bool target_matches(const std::string& target, const LinearLayer& l) {
  if (target.starts_with("re:")) {
    try {
      const std::regex re(target.substr(3));
      return std::regex_search(l.name, re, std::regex_constants::match_continuous);
    } catch (const std::regex_error& e) {
      fail("target \"{}\" is not a regular expression ({})", target, e.what());
    }
  }
  return target == l.name || (target == "Linear" && !l.conv1d) || (target == "Conv1D" && l.conv1d);
}

bool any_matches(const json& list, const LinearLayer& l, const char* what) {
  if (list.is_null()) return false;
  QF_CHECK(list.is_array(), "quantization_config \"{}\" must be a list of names", what);
  for (const json& t : list) {
    QF_CHECK(t.is_string(), "quantization_config \"{}\" holds {}, expected names", what, t.dump());
    if (target_matches(t.get<std::string>(), l)) return true;
  }
  return false;
}

struct Group {
  std::string name;
  json targets;
  WeightArgs args;
};

WeightArgs parse_weights(const json& w) {
  QF_CHECK(w.is_object(), "\"weights\" must be an object");
  WeightArgs a;
  const std::string type = config_string(w, "type", "int");
  QF_CHECK(type == "int", "\"weights\" type \"{}\" (readable: int)", type);
  const int64_t bits = config_int(w, "num_bits");
  QF_CHECK(bits >= 2 && bits <= 8, "\"weights\" num_bits {} (readable: 2..8)", bits);
  a.bits = static_cast<int>(bits);
  a.symmetric = config_bool(w, "symmetric", true);
  QF_CHECK(!config_bool(w, "dynamic", false), "\"weights\" dynamic quantization is not a stored checkpoint");
  const std::string strategy = config_string(w, "strategy");
  if (strategy == "group") {
    a.group_size = config_int(w, "group_size");
    QF_CHECK(a.group_size > 0, "\"weights\" group_size {} must be positive", a.group_size);
  } else {
    QF_CHECK(strategy == "channel", "\"weights\" strategy \"{}\" (readable: group, channel)", strategy);
  }
  const auto order = w.find("actorder");
  QF_CHECK(order == w.end() || order->is_null() || *order == "static" || *order == false,
           "\"weights\" actorder {} (only static or none keeps contiguous groups)", order->dump());
  return a;
}

std::vector<Group> parse_config(const json& qc) {
  QF_CHECK(config_string(qc, "quant_method") == kMethod, "quantization_config \"quant_method\" is not \"{}\"",
           kMethod);
  const std::string format = config_string(qc, "format", kPackQuantized);
  QF_CHECK(format == kPackQuantized, "quantization_config \"format\" is \"{}\" (readable: {})", format,
           kPackQuantized);
  const std::string status = config_string(qc, "quantization_status", "compressed");
  QF_CHECK(status == "compressed", "quantization_config \"quantization_status\" is \"{}\": the weights are not packed",
           status);
  const auto groups = qc.find("config_groups");
  QF_CHECK(groups != qc.end() && groups->is_object() && !groups->empty(),
           "quantization_config needs a non-empty \"config_groups\" object");
  std::vector<Group> out;
  for (const auto& item : groups->items()) {
    const json& g = item.value();
    out.push_back(with_context(fmt::format("config group \"{}\"", item.key()), [&] {
      QF_CHECK(g.is_object(), "must be an object");
      const std::string gf = config_string(g, "format", kPackQuantized);
      QF_CHECK(gf == kPackQuantized, "\"format\" is \"{}\" (readable: {})", gf, kPackQuantized);
      for (const char* key : {"input_activations", "output_activations"}) {
        const auto a = g.find(key);
        QF_CHECK(a == g.end() || a->is_null(), "\"{}\": activation quantization is not supported", key);
      }
      const auto targets = g.find("targets");
      QF_CHECK(targets != g.end() && targets->is_array(), "needs a \"targets\" list");
      const auto weights = g.find("weights");
      QF_CHECK(weights != g.end() && !weights->is_null(), "needs \"weights\"");
      return Group{item.key(), *targets, parse_weights(*weights)};
    }));
  }
  return out;
}

IntLayer read_layer(TensorPool& pool, const LinearLayer& ll, const WeightArgs& a, DType* scale_dtype) {
  const std::string& name = ll.name;
  const std::string why = fmt::format("layer {} is in a compressed-tensors config group", name);
  IntLayer l;
  l.out = ll.out_features;
  l.in = ll.in_features;
  l.bits = a.bits;
  l.group_size = a.group_size > 0 ? a.group_size : l.in;
  l.groups = (l.in + l.group_size - 1) / l.group_size;
  const Tensor shape = pool.take(name + ".weight_shape", why);
  QF_CHECK((shape.dtype() == DType::I64 || shape.dtype() == DType::I32) && shape.numel() == 2,
           "tensor \"{}.weight_shape\" is {} {}, expected I64 [2]", name, dtype_name(shape.dtype()),
           shape_to_string(shape.shape()));
  const int64_t s0 = shape.dtype() == DType::I64 ? shape.data<int64_t>()[0] : shape.data<int32_t>()[0];
  const int64_t s1 = shape.dtype() == DType::I64 ? shape.data<int64_t>()[1] : shape.data<int32_t>()[1];
  QF_CHECK(s0 == l.out && s1 == l.in, "tensor \"{}.weight_shape\" is [{}, {}], the layer's [out, in] is [{}, {}]", name,
           s0, s1, l.out, l.in);
  const int64_t words = formats::int32_words(l.in, l.bits, Int32Layout::WordAligned);
  const std::vector<int32_t> packed =
      int32_words_of(name + ".weight_packed", pool.take(name + ".weight_packed", why), {l.out, words});
  l.codes = formats::unpack_int32_rows(packed, l.out, l.in, l.bits, Int32Layout::WordAligned, words);
  const Tensor scale = pool.take(name + ".weight_scale", why);
  *scale_dtype = scale.dtype();
  l.scales = scales_of(name + ".weight_scale", scale, {l.out, l.groups});
  const int32_t half = 1 << (l.bits - 1);
  if (a.symmetric) {
    l.zeros.assign(l.scales.size(), half);
    // Older writers keep an all-zero (signed) zero point beside symmetric weights.
    if (pool.has(name + ".weight_zero_point")) {
      const Tensor z = pool.take(name + ".weight_zero_point", why);
      const std::vector<float> v = z.to_f32_vector();
      for (size_t i = 0; i < v.size(); ++i)
        QF_CHECK(v[i] == 0.0f, "tensor \"{}.weight_zero_point\": {} at index {} in a symmetric group", name, v[i], i);
    }
  } else {
    const int64_t zwords = formats::int32_words(l.out, l.bits, Int32Layout::WordAligned);
    const std::vector<int32_t> zp =
        int32_words_of(name + ".weight_zero_point", pool.take(name + ".weight_zero_point", why), {zwords, l.groups});
    const std::vector<uint8_t> by_group = formats::unpack_int32_rows(formats::transposed<int32_t>(zp, zwords, l.groups),
                                                                     l.groups, l.out, l.bits, Int32Layout::WordAligned,
                                                                     zwords);
    l.zeros.resize(l.scales.size());
    for (int64_t o = 0; o < l.out; ++o)
      for (int64_t g = 0; g < l.groups; ++g)
        l.zeros[static_cast<size_t>(o * l.groups + g)] = by_group[static_cast<size_t>(g * l.out + o)];
  }
  QF_CHECK(!pool.has(name + ".weight"), "unexpected tensor \"{}.weight\" (the layer is pack-quantized)", name);
  return l;
}

quant::Scheme scheme_of(const IntLayer& l, const WeightArgs& a, DType scale_dtype) {
  quant::Scheme s;
  s.format = quant::Format::Int;
  s.bits = a.bits;
  s.symmetric = a.symmetric;
  s.full_range = a.symmetric && uses_code_zero(l.codes);
  if (a.group_size > 0) {
    s.granularity = quant::Granularity::Group;
    s.group_size = a.group_size;
  } else {
    s.granularity = quant::Granularity::Channel;
  }
  // BF16 scales convert to F32 exactly.
  s.scale_format = scale_dtype == DType::F16 ? quant::ScaleFormat::F16 : quant::ScaleFormat::F32;
  s.validate();
  return s;
}

// Phi-3's qkv_proj / gate_up_proj: [out, ...] tensors stacked by rows (the
// zero points are packed along out, so each part must fill whole words).
const FuseAxes kCtFuseAxes = {{".weight_packed", FuseAxis::Rows},     {".weight_scale", FuseAxis::Rows},
                              {".weight_zero_point", FuseAxis::Rows}, {".weight_shape", FuseAxis::ShapeRows},
                              {".weight", FuseAxis::Rows},            {".bias", FuseAxis::Rows}};

}  // namespace

void save_compressed_tensors_folder(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                                    const std::string& source) {
  check_no_activation_quantizers(qm.model, "compressed-tensors");
  QF_CHECK(!qm.linears.empty(), "the model has no quantized layers to write as compressed-tensors");
  const std::map<std::string, LinearLayer> known = linears_by_name(qm.model.config);
  std::map<std::tuple<int, bool, int64_t>, std::pair<WeightArgs, std::vector<std::string>>> groups;
  std::map<std::string, const QuantizedLinear*> by_name;
  for (const QuantizedLinear& ql : qm.linears) {
    QF_CHECK(known.count(ql.name), "\"{}\" is not a linear layer of this {} model", ql.name,
             qm.model.config.model_type);
    QF_CHECK(ql.weight.scheme.format == quant::Format::Int,
             "layer \"{}\" is {}: pack-quantized checkpoints hold integer schemes only", ql.name,
             ql.weight.scheme.to_string());
    const WeightArgs a = args_of(ql.weight.scheme);
    auto& g = groups[a.key()];
    g.first = a;
    g.second.push_back(ql.name);
    by_name.emplace(ql.name, &ql);
  }
  // "Linear" covers every nn.Linear; GPT-2's Conv1D layers and mixed schemes need names.
  const bool by_class = groups.size() == 1 && qm.model.config.model_type != "gpt2";
  json config_groups = json::object();
  int index = 0;
  for (const auto& [key, g] : groups) {
    config_groups[fmt::format("group_{}", index++)] = {{"targets", by_class ? json::array({"Linear"})
                                                                          : json(checkpoint_module_names(
                                                                                qm.model.config, g.second))},
                                                       {"weights", weights_json(g.first)},
                                                       {"input_activations", nullptr},
                                                       {"output_activations", nullptr},
                                                       {"format", kPackQuantized}};
  }
  std::vector<std::string> ignore = {"lm_head"};
  for (const auto& [name, l] : known)
    if (!by_name.count(name)) ignore.push_back(name);
  ignore = checkpoint_module_names(qm.model.config, ignore);
  std::map<std::string, std::vector<formats::NamedTensor>> packed;
  std::set<std::string> names;
  // Plain loop variables, not structured bindings: clang 14 (the fuzz build)
  // cannot capture a binding in a lambda.
  for (const auto& item : by_name) {
    const std::string& name = item.first;
    const QuantizedLinear* ql = item.second;
    packed.emplace(name, with_context(fmt::format("layer \"{}\"", name), [&] { return ct_tensors(name, ql->weight); }));
    names.insert(name);
  }
  const Model stored = with_bias_groups(qm.model);
  const std::vector<formats::NamedTensor> tensors = fuse_checkpoint_projections(
      qm.model.config,
      tensors_replacing_linears(stored, names, [&](const std::string& name) { return packed.at(name); }),
      kCtFuseAxes);
  const json qc = {{"quant_method", kMethod},
                   {"format", kPackQuantized},
                   {"quantization_status", "compressed"},
                   {"config_groups", config_groups},
                   {"ignore", ignore},
                   {"kv_cache_scheme", nullptr}};
  write_quantized_folder(dir, stored, qc, tensors, vocab, source);
}

QuantizedModel load_compressed_tensors_folder(const std::string& path) {
  const fs::path folder = checkpoint_folder(path);
  const std::string config_file = (folder / "config.json").string();
  const json config = read_config_file(config_file);
  const ModelConfig mc = ModelConfig::from_hf_json(config, config_file);
  json ignore;
  const std::vector<Group> groups = with_context(config_file, [&] {
    const auto qc = config.find("quantization_config");
    QF_CHECK(qc != config.end() && qc->is_object(), "no \"quantization_config\" object");
    const auto ig = qc->find("ignore");
    ignore = ig == qc->end() ? json(nullptr) : *ig;
    return parse_config(*qc);
  });
  std::string weights_file;
  TensorPool pool(split_checkpoint_projections(mc, read_folder_tensors(folder, &weights_file), kCtFuseAxes));
  QuantizedModel qm;
  qm.info = {{"imported_from", kMethod}};
  std::set<std::string> external;
  with_context(weights_file, [&] {
    for (const LinearLayer& l : all_linears(mc)) {
      // Targets and ignore name the checkpoint's modules (Phi-3: qkv_proj, not q_proj).
      LinearLayer module = l;
      module.name = checkpoint_module_name(mc, l.name);
      const bool ignored = with_context(config_file, [&] { return any_matches(ignore, module, "ignore"); });
      const Group* group = nullptr;
      if (!ignored) {
        for (const Group& g : groups) {
          if (with_context(config_file, [&] { return any_matches(g.targets, module, "targets"); })) {
            group = &g;
            break;
          }
        }
      }
      if (!group) {
        QF_CHECK(pool.has(l.name + ".weight"), "missing tensor \"{}.weight\" (the layer is in no config group)",
                 l.name);
        continue;
      }
      DType scale_dtype = DType::F32;
      const IntLayer il = read_layer(pool, l, group->args, &scale_dtype);
      qm.linears.push_back({l.name, with_context(fmt::format("layer \"{}\"", l.name), [&] {
                              return from_int_layer(il, scheme_of(il, group->args, scale_dtype));
                            })});
      external.insert(l.name + ".weight");
    }
  });
  qm.model = build_model(mc, pool.rest(), weights_file, external);
  return qm;
}

}  // namespace qf::model
