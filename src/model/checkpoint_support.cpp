#include "model/checkpoint_support.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "core/float_formats.h"
#include "core/atomic_file.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"
#include "model/arch/fused_projections.h"
#include "model/save.h"
#include "quant/packing.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

}  // namespace

fs::path checkpoint_folder(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  const fs::path folder = fs::is_directory(p, ec) ? p : p.parent_path();
  return folder.empty() ? fs::path(".") : folder;
}

json read_config_file(const std::string& file) {
  // nlohmann's unordered flavour: key order carries no meaning here.
  return json::parse(formats::read_strict_json_file(file).dump());
}

std::optional<std::string> quant_method_of(const std::string& path) {
  const fs::path file = checkpoint_folder(path) / "config.json";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  try {
    const json config = read_config_file(file.string());
    const auto qc = config.find("quantization_config");
    if (qc == config.end() || qc->is_null()) return std::nullopt;
    if (!qc->is_object()) return "";
    const auto method = qc->find("quant_method");
    return method != qc->end() && method->is_string() ? method->get<std::string>() : "";
  } catch (const Error&) {
    return std::nullopt;  // the loader reports the broken config.json
  }
}

std::map<std::string, LinearLayer> linears_by_name(const ModelConfig& config) {
  std::map<std::string, LinearLayer> out;
  for (LinearLayer& l : all_linears(config)) out.emplace(l.name, std::move(l));
  return out;
}

std::vector<std::string> float_linears(const QuantizedModel& qm) {
  std::set<std::string> quantized;
  for (const QuantizedLinear& ql : qm.linears) quantized.insert(ql.name);
  std::vector<std::string> out;
  for (const auto& [name, l] : linears_by_name(qm.model.config))
    if (!quantized.count(name)) out.push_back(name);
  return out;
}

std::vector<formats::NamedTensor> read_folder_tensors(const fs::path& folder, std::string* file) {
  std::error_code ec;
  if (!fs::is_regular_file(folder / "model.safetensors", ec) &&
      !fs::is_regular_file(folder / "model.safetensors.index.json", ec)) {
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(folder, ec))
      if (e.path().extension() == ".safetensors" && e.is_regular_file(ec)) found.push_back(e.path().string());
    std::sort(found.begin(), found.end());
    QF_CHECK(!found.empty(), "{}: no model.safetensors, model.safetensors.index.json or *.safetensors file",
             folder.string());
    QF_CHECK(found.size() == 1, "{}: holds {} safetensors files and no index ({})", folder.string(), found.size(),
             fmt::join(found, ", "));
    formats::Checkpoint c = formats::open_checkpoint(found.front());
    if (file) *file = c.path;
    return std::move(c.tensors);
  }
  formats::Checkpoint c = formats::open_checkpoint(folder.string());
  if (file) *file = c.path;
  return std::move(c.tensors);
}

Model with_bias_groups(const Model& m) {
  Model out = m;  // shares the tensors
  // A bias on any layer a switch governs turns the switch on for them all.
  for (const LinearLayer& l : all_linears(out.config)) {
    if (linear_bias(m.layers[static_cast<size_t>(l.layer)], l.kind).empty()) continue;
    const BiasRule rule = bias_rule(out.config, l.kind);
    if (rule == BiasRule::IfAttentionBias) out.config.attention_bias = true;
    if (rule == BiasRule::IfMlpBias) out.config.mlp_bias = true;
  }
  for (const LinearLayer& l : all_linears(out.config)) {
    Tensor& b = linear_bias(out.layers[static_cast<size_t>(l.layer)], l.kind);
    const BiasRule rule = bias_rule(out.config, l.kind);
    const bool wanted = rule == BiasRule::Always || (rule == BiasRule::IfAttentionBias && out.config.attention_bias) ||
                        (rule == BiasRule::IfMlpBias && out.config.mlp_bias);
    if (wanted && b.empty()) b = Tensor::zeros(DType::F32, {l.out_features});
  }
  return out;
}

std::vector<formats::NamedTensor> tensors_replacing_linears(
    const Model& model, const std::set<std::string>& replaced,
    const std::function<std::vector<formats::NamedTensor>(const std::string&)>& tensors_of) {
  // A marker in each replaced weight's slot makes named_tensors() list it in place.
  Model m = model;
  const Tensor marker = Tensor::zeros(DType::U8, {1});
  const std::map<std::string, LinearLayer> known = linears_by_name(m.config);
  std::unordered_map<std::string, std::string> by_weight;
  for (const std::string& name : replaced) {
    const auto it = known.find(name);
    QF_CHECK(it != known.end(), "\"{}\" is not a linear layer of this {} model", name, m.config.model_type);
    linear_weight(m.layers[static_cast<size_t>(it->second.layer)], it->second.kind) = marker;
    by_weight.emplace(name + ".weight", name);
  }
  std::vector<formats::NamedTensor> out;
  for (formats::NamedTensor& nt : m.named_tensors()) {
    const auto it = by_weight.find(nt.name);
    if (it == by_weight.end()) {
      out.push_back(std::move(nt));
      continue;
    }
    for (formats::NamedTensor& t : tensors_of(it->second)) out.push_back(std::move(t));
  }
  return out;
}

void write_quantized_folder(const std::string& dir, const Model& stored, const json& quantization_config,
                            const std::vector<formats::NamedTensor>& tensors, const tokenizer::Vocab& vocab,
                            const std::string& source, const std::map<std::string, json>& extra_json) {
  json config = stored.config.to_hf_json();
  config["quantization_config"] = quantization_config;
  create_output_folder(dir);
  formats::write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  for (const auto& [name, content] : extra_json) {
    const std::string text = content.dump(2) + "\n";
    write_file_atomically((fs::path(dir) / name).string(), std::as_bytes(std::span(text)));
  }
  write_config_json(dir, config);
  write_tokenizer_files(dir, vocab, source);
}

void check_no_activation_quantizers(const Model& m, const std::string& format) {
  for (size_t i = 0; i < m.layers.size(); ++i)
    for (int site = 0; site < kInputSites; ++site)
      QF_CHECK(m.layers[i].act[static_cast<size_t>(site)].mode == ActQuantMode::None,
               "{} checkpoints hold weight-only quantization; block {} has an activation quantizer at {} (write the "
               "qforge format to keep it)",
               format, block_prefix(m.config, static_cast<int64_t>(i)),
               input_site_name(static_cast<InputSite>(site)));
}

TensorPool::TensorPool(std::vector<formats::NamedTensor> tensors) : tensors_(std::move(tensors)) {
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

Tensor TensorPool::take(const std::string& name, const std::string& why) {
  const auto it = index_.find(name);
  QF_CHECK(it != index_.end(), "missing tensor \"{}\" ({})", name, why);
  taken_.insert(name);
  return tensors_[it->second].tensor;
}

std::vector<formats::NamedTensor> TensorPool::rest() const {
  std::vector<formats::NamedTensor> out;
  for (const auto& nt : tensors_)
    if (!taken_.count(nt.name)) out.push_back(nt);
  return out;
}

IntLayer to_int_layer(const quant::QuantizedTensor& q) {
  QF_CHECK(q.scheme.format == quant::Format::Int, "scheme {} is not an integer scheme", q.scheme.to_string());
  QF_CHECK(q.shape.size() == 2, "a quantized layer is a matrix, got shape {}", shape_to_string(q.shape));
  const quant::ParamGrid grid = quant::stored_params(q);  // validates
  IntLayer l;
  l.out = q.shape[0];
  l.in = q.shape[1];
  l.bits = q.scheme.bits;
  l.group_size = q.scheme.values_per_scale(l.in);
  l.groups = q.scheme.groups_per_row(l.in);
  l.codes.resize(static_cast<size_t>(l.out * l.in));
  const int64_t bytes = q.codes.cols();
  const uint8_t* packed = q.codes.data<uint8_t>();
  for (int64_t r = 0; r < l.out; ++r) {
    quant::unpack_codes({packed + r * bytes, static_cast<size_t>(bytes)}, l.bits,
                        {l.codes.data() + r * l.in, static_cast<size_t>(l.in)});
  }
  const int32_t bias = quant::code_bias(q.scheme);
  l.scales.resize(static_cast<size_t>(l.out * l.groups));
  l.zeros.resize(l.scales.size());
  for (int64_t r = 0; r < l.out; ++r) {
    const auto row = grid.row(grid.rows == 1 ? 0 : r);  // tensor granularity: one row for all
    for (int64_t g = 0; g < l.groups; ++g) {
      const size_t i = static_cast<size_t>(r * l.groups + g);
      l.scales[i] = row[static_cast<size_t>(g)].scale;
      l.zeros[i] = q.scheme.symmetric ? bias : row[static_cast<size_t>(g)].zero_point;
    }
  }
  return l;
}

quant::QuantizedTensor from_int_layer(const IntLayer& l, const quant::Scheme& scheme) {
  QF_CHECK(scheme.format == quant::Format::Int && scheme.bits == l.bits, "scheme {} for a {}-bit layer",
           scheme.to_string(), l.bits);
  QF_CHECK(scheme.granularity != quant::Granularity::Tensor, "scheme {}: per-tensor scales are not rebuilt here",
           scheme.to_string());
  QF_CHECK(scheme.values_per_scale(l.in) == l.group_size && scheme.groups_per_row(l.in) == l.groups,
           "scheme {} disagrees with groups of {} over {} columns", scheme.to_string(), l.group_size, l.in);
  const size_t n = static_cast<size_t>(l.out * l.groups);
  QF_CHECK(l.scales.size() == n && l.zeros.size() == n && l.codes.size() == static_cast<size_t>(l.out * l.in),
           "layer arrays disagree with its shape [{}, {}]", l.out, l.in);
  quant::QuantizedTensor q;
  q.scheme = scheme;
  q.shape = {l.out, l.in};
  const size_t bytes = quant::packed_bytes(l.in, l.bits);
  q.codes = Tensor::zeros(DType::U8, {l.out, static_cast<int64_t>(bytes)});
  uint8_t* packed = q.codes.mutable_data<uint8_t>();
  for (int64_t r = 0; r < l.out; ++r)
    quant::pack_codes({l.codes.data() + r * l.in, static_cast<size_t>(l.in)}, l.bits, {packed + r * bytes, bytes});
  const Shape grid{l.out, l.groups};
  switch (scheme.scale_format) {
    case quant::ScaleFormat::F32: q.scales = Tensor::from_f32(l.scales, grid); break;
    case quant::ScaleFormat::F16: {
      q.scales = Tensor::zeros(DType::F16, grid);
      uint16_t* s = q.scales.mutable_data<uint16_t>();
      for (size_t i = 0; i < n; ++i) {
        s[i] = f32_to_f16(l.scales[i]);
        QF_CHECK(f16_to_f32(s[i]) == l.scales[i], "scale {} at [{}, {}] is not an fp16 value", l.scales[i],
                 i / static_cast<size_t>(l.groups), i % static_cast<size_t>(l.groups));
      }
      break;
    }
    case quant::ScaleFormat::Pow2: fail("power-of-two scales are not rebuilt from decoded scales");
  }
  const int32_t bias = int32_t{1} << (l.bits - 1);
  if (scheme.symmetric) {
    for (size_t i = 0; i < n; ++i)
      QF_CHECK(l.zeros[i] == bias, "zero point {} at [{}, {}] of a symmetric layer (must be {})", l.zeros[i],
               i / static_cast<size_t>(l.groups), i % static_cast<size_t>(l.groups), bias);
  } else {
    q.zero_points = Tensor::zeros(DType::U8, grid);
    uint8_t* z = q.zero_points.mutable_data<uint8_t>();
    for (size_t i = 0; i < n; ++i) {
      QF_CHECK(l.zeros[i] >= 0 && l.zeros[i] < (1 << l.bits), "zero point {} at [{}, {}] outside [0, {}]", l.zeros[i],
               i / static_cast<size_t>(l.groups), i % static_cast<size_t>(l.groups), (1 << l.bits) - 1);
      z[i] = static_cast<uint8_t>(l.zeros[i]);
    }
  }
  q.validate();
  return q;
}

Tensor dequantize_int_layer(const IntLayer& l, const std::vector<int32_t>& group_of_column) {
  QF_CHECK(static_cast<int64_t>(group_of_column.size()) == l.in, "{} group indices for {} columns",
           group_of_column.size(), l.in);
  Tensor w = Tensor::zeros(DType::F32, {l.out, l.in});
  float* o = w.mutable_data<float>();
  for (int64_t r = 0; r < l.out; ++r) {
    for (int64_t c = 0; c < l.in; ++c) {
      const int32_t g = group_of_column[static_cast<size_t>(c)];
      QF_CHECK(g >= 0 && g < l.groups, "group index {} of column {} outside [0, {})", g, c, l.groups);
      const size_t p = static_cast<size_t>(r * l.groups + g);
      // As affine_dequantize_codes: the integer difference is exact in float.
      o[r * l.in + c] = l.scales[p] * (static_cast<float>(l.codes[static_cast<size_t>(r * l.in + c)]) -
                                       static_cast<float>(l.zeros[p]));
    }
  }
  return w;
}

Tensor f16_scales_by_group(const IntLayer& l, const std::string& name, bool* rounded) {
  Tensor t = Tensor::zeros(DType::F16, {l.groups, l.out});
  uint16_t* s = t.mutable_data<uint16_t>();
  for (int64_t o = 0; o < l.out; ++o) {
    for (int64_t g = 0; g < l.groups; ++g) {
      const float x = l.scales[static_cast<size_t>(o * l.groups + g)];
      const uint16_t h = f32_to_f16(x);
      const float back = f16_to_f32(h);
      QF_CHECK(std::isfinite(back) && back > 0.0f, "layer \"{}\": scale {} at [{}, {}] does not fit fp16", name, x, o,
               g);
      if (back != x && rounded) *rounded = true;
      s[g * l.out + o] = h;
    }
  }
  return t;
}

Tensor int32_tensor(const std::vector<int32_t>& words, const Shape& shape) {
  Tensor t = Tensor::zeros(DType::I32, shape);
  QF_CHECK(static_cast<int64_t>(words.size()) == t.numel(), "{} words for a tensor of shape {}", words.size(),
           shape_to_string(shape));
  std::copy(words.begin(), words.end(), t.mutable_data<int32_t>());
  return t;
}

std::vector<int32_t> contiguous_groups(int64_t in, int64_t group_size) {
  std::vector<int32_t> g(static_cast<size_t>(in));
  for (int64_t i = 0; i < in; ++i) g[static_cast<size_t>(i)] = static_cast<int32_t>(i / group_size);
  return g;
}

int64_t group_size_of(const quant::Scheme& s) {
  return s.granularity == quant::Granularity::Group ? s.group_size : -1;
}

bool uses_code_zero(const std::vector<uint8_t>& codes) {
  return std::find(codes.begin(), codes.end(), uint8_t{0}) != codes.end();
}

namespace {

const json* field(const json& qc, const char* key) {
  const auto it = qc.find(key);
  return it == qc.end() || it->is_null() ? nullptr : &*it;
}

std::string shown(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

}  // namespace

int64_t config_int(const json& qc, const char* key, std::optional<int64_t> fallback) {
  const json* v = field(qc, key);
  if (!v) {
    QF_CHECK(fallback.has_value(), "quantization_config has no \"{}\"", key);
    return *fallback;
  }
  QF_CHECK(v->is_number_integer(), "quantization_config \"{}\" must be an integer, got {}", key, shown(*v));
  return v->get<int64_t>();
}

bool config_bool(const json& qc, const char* key, std::optional<bool> fallback) {
  const json* v = field(qc, key);
  if (!v) {
    QF_CHECK(fallback.has_value(), "quantization_config has no \"{}\"", key);
    return *fallback;
  }
  QF_CHECK(v->is_boolean(), "quantization_config \"{}\" must be true or false, got {}", key, shown(*v));
  return v->get<bool>();
}

std::string config_string(const json& qc, const char* key, std::optional<std::string> fallback) {
  const json* v = field(qc, key);
  if (!v) {
    QF_CHECK(fallback.has_value(), "quantization_config has no \"{}\"", key);
    return *fallback;
  }
  QF_CHECK(v->is_string(), "quantization_config \"{}\" must be a string, got {}", key, shown(*v));
  return v->get<std::string>();
}

void check_tensor_is(const std::string& name, const Tensor& t, DType dtype, const Shape& shape) {
  QF_CHECK(t.dtype() == dtype && t.shape() == shape, "tensor \"{}\" is {} {}, expected {} {}", name,
           dtype_name(t.dtype()), shape_to_string(t.shape()), dtype_name(dtype), shape_to_string(shape));
}

std::vector<int32_t> int32_words_of(const std::string& name, const Tensor& t, const Shape& shape) {
  check_tensor_is(name, t, DType::I32, shape);
  const int32_t* p = t.data<int32_t>();
  return std::vector<int32_t>(p, p + t.numel());
}

std::vector<float> scales_of(const std::string& name, const Tensor& t, const Shape& shape) {
  QF_CHECK((t.dtype() == DType::F16 || t.dtype() == DType::BF16 || t.dtype() == DType::F32) && t.shape() == shape,
           "tensor \"{}\" is {} {}, expected F16, BF16 or F32 {}", name, dtype_name(t.dtype()),
           shape_to_string(t.shape()), shape_to_string(shape));
  std::vector<float> s = t.to_f32_vector();
  const int64_t cols = shape.empty() ? 1 : shape.back();
  for (size_t i = 0; i < s.size(); ++i) {
    // A zero or negative scale would collapse or mirror the group; a NaN poisons every weight.
    QF_CHECK(std::isfinite(s[i]) && s[i] > 0.0f, "tensor \"{}\": scale {} at [{}, {}] is not finite and positive",
             name, s[i], static_cast<int64_t>(i) / cols, static_cast<int64_t>(i) % cols);
  }
  return s;
}

void notice(const std::string& line) { fmt::print(stderr, "qforge: note: {}\n", line); }

}  // namespace qf::model

namespace qf::model {
namespace {

// A tensor name split as "<module><suffix>" for a suffix in `axes`, where
// the module is a fused projection's part (or, with `fused`, the fused one).
struct FusedTensorName {
  std::string layer_prefix;  // "model.layers.3."
  const FusedProjection* projection = nullptr;
  size_t part = 0;  // index in the projection (part names only)
  std::string suffix;
};

std::optional<FusedTensorName> parse_fused_tensor(const ModelConfig& c, const std::string& name, const FuseAxes& axes,
                                                  bool fused) {
  constexpr std::string_view kPrefix = "model.layers.";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  const size_t dot = name.find('.', kPrefix.size());
  if (dot == std::string::npos) return std::nullopt;
  const std::string prefix = name.substr(0, dot + 1);
  const std::string_view rest = std::string_view(name).substr(dot + 1);
  for (const FusedProjection& f : fused_projections(c)) {
    auto try_module = [&](std::string_view module, size_t part) -> std::optional<FusedTensorName> {
      if (!rest.starts_with(module)) return std::nullopt;
      const std::string suffix(rest.substr(module.size()));
      if (!axes.count(suffix)) return std::nullopt;
      return FusedTensorName{prefix, &f, part, suffix};
    };
    if (fused) {
      if (auto n = try_module(f.name, 0)) return n;
    } else {
      for (size_t i = 0; i < f.part_list().size(); ++i)
        if (auto n = try_module(f.part_list()[i].name, i)) return n;
    }
  }
  return std::nullopt;
}

// Column blocks [begin, begin + count) of a 2-D tensor, as an owning copy.
Tensor slice_cols(const Tensor& t, int64_t begin, int64_t count) {
  const int64_t rows = t.dim(0), cols = t.dim(1);
  const size_t es = dtype_size(t.dtype());
  Tensor out = Tensor::zeros(t.dtype(), {rows, count});
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out.mutable_bytes() + static_cast<size_t>(r * count) * es,
                t.bytes() + static_cast<size_t>(r * cols + begin) * es, static_cast<size_t>(count) * es);
  return out;
}

Tensor concat_cols(const std::vector<Tensor>& parts) {
  const int64_t rows = parts.front().dim(0);
  int64_t cols = 0;
  for (const Tensor& p : parts) cols += p.dim(1);
  const size_t es = dtype_size(parts.front().dtype());
  Tensor out = Tensor::zeros(parts.front().dtype(), {rows, cols});
  int64_t at = 0;
  for (const Tensor& p : parts) {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(out.mutable_bytes() + static_cast<size_t>(r * cols + at) * es,
                  p.bytes() + static_cast<size_t>(r * p.dim(1)) * es, static_cast<size_t>(p.dim(1)) * es);
    at += p.dim(1);
  }
  return out;
}

}  // namespace

std::string checkpoint_module_name(const ModelConfig& c, const std::string& module) {
  const auto loc = fused_location(c, module + ".weight");
  return loc ? loc->fused_name.substr(0, loc->fused_name.size() - 7) : module;
}

std::vector<std::string> checkpoint_module_names(const ModelConfig& c, const std::vector<std::string>& modules) {
  std::vector<std::string> out;
  for (const std::string& m : modules) {
    std::string name = checkpoint_module_name(c, m);
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  }
  return out;
}

std::vector<formats::NamedTensor> fuse_checkpoint_projections(const ModelConfig& c,
                                                              const std::vector<formats::NamedTensor>& tensors,
                                                              const FuseAxes& axes) {
  if (fused_projections(c).empty()) return tensors;
  std::map<std::string, const Tensor*> by_name;
  for (const formats::NamedTensor& nt : tensors) by_name.emplace(nt.name, &nt.tensor);
  std::vector<formats::NamedTensor> out;
  for (const formats::NamedTensor& nt : tensors) {
    const auto n = parse_fused_tensor(c, nt.name, axes, false);
    if (!n) {
      out.push_back(nt);
      continue;
    }
    const auto parts = n->projection->part_list();
    const std::string fused_name = n->layer_prefix + std::string(n->projection->name) + n->suffix;
    if (n->part != 0) {
      QF_CHECK(by_name.count(n->layer_prefix + std::string(parts[0].name) + n->suffix),
               "{} stores \"{}\" fused into {} with \"{}{}{}\", which is missing: quantize the parts alike",
               c.model_type, nt.name, fused_name, n->layer_prefix, parts[0].name, n->suffix);
      continue;  // stacked with the first part
    }
    std::vector<Tensor> stack;
    std::vector<int64_t> rows;
    for (const ProjectionPart& p : parts) {
      const std::string part_name = n->layer_prefix + std::string(p.name) + n->suffix;
      const auto it = by_name.find(part_name);
      QF_CHECK(it != by_name.end(),
               "{} stores {}'s parts fused, but \"{}\" has no \"{}\" beside \"{}\": quantize the parts alike",
               c.model_type, n->layer_prefix + std::string(n->projection->name), part_name, n->suffix, nt.name);
      QF_CHECK(it->second->dtype() == nt.tensor.dtype(), "\"{}\" is {} but \"{}\" is {}: the fused {} has one dtype",
               part_name, dtype_name(it->second->dtype()), nt.name, dtype_name(nt.tensor.dtype()), fused_name);
      stack.push_back(*it->second);
      rows.push_back(part_rows(c, p.rows));
    }
    const FuseAxis axis = axes.at(n->suffix);
    Tensor fused;
    if (axis == FuseAxis::Same) {
      for (const Tensor& t : stack)
        QF_CHECK(t.shape() == stack[0].shape() && std::memcmp(t.bytes(), stack[0].bytes(), t.nbytes()) == 0,
                 "the parts of {} differ in {}, which the fused module shares", fused_name, n->suffix);
      fused = stack[0];
    } else if (axis == FuseAxis::ShapeRows) {
      fused = stack[0].clone();
      int64_t* v = fused.mutable_data<int64_t>();
      for (size_t i = 1; i < stack.size(); ++i) {
        QF_CHECK(stack[i].data<int64_t>()[1] == v[1], "the parts of {} have different input widths", fused_name);
        v[0] += stack[i].data<int64_t>()[0];
      }
    } else {
      const int d = axis == FuseAxis::Rows ? 0 : 1;
      for (size_t i = 0; i < stack.size(); ++i) {
        QF_CHECK(stack[i].ndim() > d, "\"{}{}\" has shape {}: nothing to stack along dim {}", parts[i].name,
                 n->suffix, shape_to_string(stack[i].shape()), d);
        // Packed widths must scale with the rows, or words straddle two parts.
        QF_CHECK(stack[i].dim(d) * rows[0] == stack[0].dim(d) * rows[i],
                 "the parts of {} pack to widths {} and {} for {} and {} rows: the fused module cannot hold them "
                 "(each part's rows times bits must fill whole 32-bit words)",
                 fused_name, stack[0].dim(d), stack[i].dim(d), rows[0], rows[i]);
      }
      fused = d == 0 ? concat_rows(stack) : concat_cols(stack);
    }
    out.push_back({fused_name, fused});
  }
  return out;
}

std::vector<formats::NamedTensor> split_checkpoint_projections(const ModelConfig& c,
                                                               const std::vector<formats::NamedTensor>& tensors,
                                                               const FuseAxes& axes) {
  if (fused_projections(c).empty()) return tensors;
  std::vector<formats::NamedTensor> out;
  for (const formats::NamedTensor& nt : tensors) {
    const auto n = parse_fused_tensor(c, nt.name, axes, true);
    if (!n) {
      out.push_back(nt);
      continue;
    }
    const auto parts = n->projection->part_list();
    int64_t total = 0;
    for (const ProjectionPart& p : parts) total += part_rows(c, p.rows);
    const FuseAxis axis = axes.at(n->suffix);
    const int d = axis == FuseAxis::Cols ? 1 : 0;
    if (axis == FuseAxis::Rows || axis == FuseAxis::Cols)
      QF_CHECK(nt.tensor.ndim() > d && (nt.tensor.dim(d) * part_rows(c, parts[0].rows)) % total == 0,
               "tensor \"{}\" has shape {}, which does not split into the {} parts", nt.name,
               shape_to_string(nt.tensor.shape()), n->projection->name);
    if (axis == FuseAxis::ShapeRows)
      QF_CHECK(nt.tensor.dtype() == DType::I64 && nt.tensor.numel() == 2 && nt.tensor.data<int64_t>()[0] == total,
               "tensor \"{}\" must be an I64 [out, in] with out = {}", nt.name, total);
    int64_t at = 0;
    for (const ProjectionPart& p : parts) {
      const int64_t rows = part_rows(c, p.rows);
      const std::string name = n->layer_prefix + std::string(p.name) + n->suffix;
      Tensor part;
      if (axis == FuseAxis::Same) {
        part = nt.tensor;
      } else if (axis == FuseAxis::ShapeRows) {
        part = nt.tensor.clone();
        part.mutable_data<int64_t>()[0] = rows;
      } else {
        const int64_t width = nt.tensor.dim(d) * rows / total;
        part = d == 0 ? nt.tensor.slice_rows(at, width) : slice_cols(nt.tensor, at, width);
        at += width;
      }
      out.push_back({name, part});
    }
  }
  return out;
}

}  // namespace qf::model
