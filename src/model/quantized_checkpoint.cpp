#include "model/quantized_checkpoint.h"

#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "core/float_formats.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"
#include "model/checkpoint_support.h"
#include "model/linear_layers.h"
#include "model/save.h"
#include "quant/affine.h"
#include "quant/packing.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using formats::quote;

constexpr const char* kQuantMethod = "qforge";
constexpr int64_t kFormatVersion = 1;
// Keys of quantization_config this format owns; QuantizedModel::info may hold any other.
constexpr std::array<const char*, 5> kReservedKeys = {"quant_method", "format_version", "layers", "activations",
                                                      "transforms"};
const std::string kTransformMix = ".transform_mix";

const std::string kCodes = ".weight_codes";
const std::string kScales = ".weight_scales";
const std::string kZeros = ".weight_zeros";

std::string show(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

bool has_zero_points(const quant::Scheme& s) { return s.format == quant::Format::Int && !s.symmetric; }

// ---------------------------------------------------------------------------
// Stored parameters: the checks save and load share, so that save never
// writes a file load would reject.

float stored_scale(const quant::QuantizedTensor& q, int64_t i) {
  switch (q.scheme.scale_format) {
    case quant::ScaleFormat::F32: return q.scales.data<float>()[i];
    case quant::ScaleFormat::F16: return f16_to_f32(q.scales.data<uint16_t>()[i]);
    case quant::ScaleFormat::Pow2: return std::ldexp(1.0f, q.scales.data<int8_t>()[i]);
  }
  return 0.0f;
}

// A zero or negative scale would collapse or mirror the group; a NaN poisons every weight.
void check_stored_params(const std::string& name, const quant::QuantizedTensor& q) {
  const int64_t n = q.scales.numel(), groups = q.scales.cols();
  if (q.scheme.scale_format != quant::ScaleFormat::Pow2) {
    for (int64_t i = 0; i < n; ++i) {
      const float s = stored_scale(q, i);
      QF_CHECK(std::isfinite(s) && s > 0.0f, "tensor \"{}{}\": scale {} at [{}, {}] is not finite and positive",
               name, kScales, s, i / groups, i % groups);
    }
  }
  if (!has_zero_points(q.scheme)) return;
  const quant::CodeRange range = quant::int_code_range(q.scheme.bits, false, q.scheme.full_range);
  const uint8_t* z = q.zero_points.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    QF_CHECK(z[i] >= range.qmin && z[i] <= range.qmax,
             "tensor \"{}{}\": zero point {} at [{}, {}] is outside the code range [{}, {}] of {}", name, kZeros,
             z[i], i / groups, i % groups, range.qmin, range.qmax, q.scheme.to_string());
  }
}

// ---------------------------------------------------------------------------
// Activation quantizers.

const char* mode_name(ActQuantMode mode) {
  switch (mode) {
    case ActQuantMode::None: return "none";
    case ActQuantMode::DynamicToken: return "dynamic-token";
    case ActQuantMode::StaticTensor: return "static-tensor";
  }
  return "?";
}

// The fields that are stored must say everything: a dynamic quantizer's
// scale is chosen at run time, so one given here would not survive a round trip.
void check_activation(const ActivationQuant& a) {
  QF_CHECK(a.bits >= quant::kMinIntBits && a.bits <= quant::kMaxRangeIntBits, "bits {} out of range [{}, {}]",
           a.bits, quant::kMinIntBits, quant::kMaxRangeIntBits);
  if (a.mode == ActQuantMode::DynamicToken) {
    QF_CHECK(a.symmetric, "dynamic-token quantization is symmetric only");
    QF_CHECK(a.scale == 0.0f && a.zero_point == 0, "dynamic-token quantization has no stored scale or zero point");
    return;
  }
  QF_CHECK(std::isfinite(a.scale) && a.scale > 0.0f, "static scale {} must be finite and positive", a.scale);
  const quant::CodeRange range = quant::int_code_range(a.bits, a.symmetric, false);
  if (a.symmetric) {
    QF_CHECK(a.zero_point == 0, "a symmetric quantizer has zero point 0, got {}", a.zero_point);
  } else {
    QF_CHECK(a.zero_point >= range.qmin && a.zero_point <= range.qmax,
             "zero point {} is outside the code range [{}, {}]", a.zero_point, range.qmin, range.qmax);
  }
}

json activation_json(const ActivationQuant& a) {
  json j = {{"mode", mode_name(a.mode)}, {"bits", a.bits}, {"symmetric", a.symmetric}};
  if (a.mode == ActQuantMode::StaticTensor) {
    // The exact double of the float, so reading it back gives the same bits.
    j["scale"] = static_cast<double>(a.scale);
    j["zero_point"] = a.zero_point;
  }
  return j;
}

const json& require(const json& j, const char* key) {
  QF_CHECK(j.contains(key), "missing \"{}\"", key);
  return j.at(key);
}

int64_t require_int(const json& j, const char* key) {
  const json& v = require(j, key);
  QF_CHECK(v.is_number_integer(), "\"{}\" must be an integer, got {}", key, show(v));
  return v.get<int64_t>();
}

void check_keys(const json& j, std::initializer_list<std::string_view> allowed) {
  QF_CHECK(j.is_object(), "must be an object, got {}", show(j));
  for (const auto& [key, value] : j.items()) {
    bool ok = false;
    for (auto a : allowed) ok = ok || key == a;
    QF_CHECK(ok, "unknown key {}", quote(key));
  }
}

ActivationQuant parse_activation(const json& j) {
  check_keys(j, {"mode", "bits", "symmetric", "scale", "zero_point"});
  const json& mode = require(j, "mode");
  ActivationQuant a;
  if (mode == mode_name(ActQuantMode::DynamicToken)) {
    a.mode = ActQuantMode::DynamicToken;
  } else if (mode == mode_name(ActQuantMode::StaticTensor)) {
    a.mode = ActQuantMode::StaticTensor;
  } else {
    fail("unknown mode {} (valid: dynamic-token, static-tensor)", show(mode));
  }
  const int64_t bits = require_int(j, "bits");
  QF_CHECK(bits >= quant::kMinIntBits && bits <= quant::kMaxRangeIntBits, "bits {} out of range [{}, {}]", bits,
           quant::kMinIntBits, quant::kMaxRangeIntBits);
  a.bits = static_cast<int>(bits);
  const json& sym = require(j, "symmetric");
  QF_CHECK(sym.is_boolean(), "\"symmetric\" must be true or false, got {}", show(sym));
  a.symmetric = sym.get<bool>();
  if (a.mode == ActQuantMode::StaticTensor) {
    const json& scale = require(j, "scale");
    QF_CHECK(scale.is_number(), "\"scale\" must be a number, got {}", show(scale));
    const double value = scale.get<double>();
    // Checked before the cast: a double beyond the float range converts to UB.
    QF_CHECK(std::isfinite(value) && value > 0.0 && value <= FLT_MAX,
             "static scale {} must be finite and positive (and fit a float)", value);
    a.scale = static_cast<float>(value);
    const int64_t zp = require_int(j, "zero_point");
    QF_CHECK(zp >= INT32_MIN && zp <= INT32_MAX, "zero point {} is outside the code range", zp);
    a.zero_point = static_cast<int32_t>(zp);
  } else {
    QF_CHECK(!j.contains("scale") && !j.contains("zero_point"),
             "dynamic-token quantization has no stored scale or zero point");
  }
  check_activation(a);
  return a;
}

std::string activation_key(const ModelConfig& config, int64_t layer, int site) {
  return block_prefix(config, layer) + "." + input_site_name(static_cast<InputSite>(site));
}

// ---------------------------------------------------------------------------
// Online input transforms (rotated models): {"size": n, "hadamard_block": b}
// per site, the [n/b, n/b] mix as the tensor KEY.transform_mix when n != b.

int64_t site_width(const ModelConfig& c, int site) {
  switch (static_cast<InputSite>(site)) {
    case InputSite::AttnIn:
    case InputSite::FfnIn: return c.hidden_size;
    case InputSite::AttnOut: return c.arch == Architecture::GPT2 ? c.hidden_size : c.q_dim();
    case InputSite::FfnHidden: return c.intermediate_size;
  }
  return 0;
}

// Shapes, and an orthogonal mix: a matrix that is not would silently change
// the model instead of rotating it.
void check_transform(const InputTransform& t, int64_t width) {
  QF_CHECK(t.size == width, "size {} disagrees with the site's width {}", t.size, width);
  QF_CHECK(t.block > 0 && (t.block & (t.block - 1)) == 0 && t.size % t.block == 0,
           "hadamard_block {} is not a power of two dividing {}", t.block, t.size);
  const int64_t m = t.size / t.block;
  if (m == 1) {
    QF_CHECK(t.mix.empty(), "a transform with hadamard_block == size has no mix");
    return;
  }
  QF_CHECK(t.mix.dtype() == DType::F32 && t.mix.shape() == (Shape{m, m}), "mix is {} {}, expected F32 [{}, {}]",
           dtype_name(t.mix.dtype()), shape_to_string(t.mix.shape()), m, m);
  const float* r = t.mix.data<float>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = i; j < std::min(m, i + 2); ++j) {  // norms and neighbours: O(m^2)
      double d = 0.0;
      for (int64_t k = 0; k < m; ++k) d += static_cast<double>(r[i * m + k]) * r[j * m + k];
      const double want = i == j ? 1.0 : 0.0;
      QF_CHECK(std::isfinite(d) && std::fabs(d - want) < 1e-4, "mix is not orthogonal (rows {} . {} = {})", i, j, d);
    }
}

// ---------------------------------------------------------------------------
// Saving.

void check_linears(const QuantizedModel& qm, const std::map<std::string, LinearLayer>& known) {
  const Model& m = qm.model;
  QF_CHECK(static_cast<int64_t>(m.layers.size()) == m.config.n_layers, "the model has {} layers, its config {}",
           m.layers.size(), m.config.n_layers);
  std::set<std::string> quantized;
  for (const QuantizedLinear& ql : qm.linears) {
    const auto it = known.find(ql.name);
    QF_CHECK(it != known.end(), "{} is not a linear layer of this {} model", quote(ql.name), m.config.model_type);
    QF_CHECK(quantized.insert(ql.name).second, "layer \"{}\" is quantized twice", ql.name);
    const Shape want{it->second.out_features, it->second.in_features};
    QF_CHECK(ql.weight.shape == want, "layer \"{}\": quantized weight of shape {}, expected [out, in] = {}", ql.name,
             shape_to_string(ql.weight.shape), shape_to_string(want));
    with_context(fmt::format("layer \"{}\"", ql.name), [&] { ql.weight.validate(); });
    check_stored_params(ql.name, ql.weight);
  }
  for (const auto& [name, l] : known) {
    QF_CHECK(quantized.count(name) || !linear_weight(m.layers[static_cast<size_t>(l.layer)], l.kind).empty(),
             "layer \"{}\" has neither a quantized nor a float weight", name);
  }
}

// named_tensors() order, each quantized weight replaced by its codes, scales
// and zero points.
std::vector<formats::NamedTensor> checkpoint_tensors(const Model& m, const QuantizedModel& qm) {
  std::map<std::string, const QuantizedLinear*> by_name;
  std::set<std::string> names;
  for (const QuantizedLinear& ql : qm.linears) {
    by_name.emplace(ql.name, &ql);
    names.insert(ql.name);
  }
  return tensors_replacing_linears(m, names, [&](const std::string& name) {
    const QuantizedLinear& ql = *by_name.at(name);
    std::vector<formats::NamedTensor> out = {{ql.name + kCodes, ql.weight.codes}, {ql.name + kScales, ql.weight.scales}};
    if (has_zero_points(ql.weight.scheme)) out.push_back({ql.name + kZeros, ql.weight.zero_points});
    return out;
  });
}

json quantization_config(const QuantizedModel& qm) {
  QF_CHECK(qm.info.is_object(), "quantization info must be a JSON object, got {}", show(qm.info));
  for (const char* key : kReservedKeys)
    QF_CHECK(!qm.info.contains(key), "quantization info must not set the reserved key \"{}\"", key);
  json qc = qm.info;
  qc["quant_method"] = kQuantMethod;
  qc["format_version"] = kFormatVersion;
  json layers = json::object();
  for (const QuantizedLinear& ql : qm.linears)
    layers[ql.name] = {{"scheme", ql.weight.scheme.to_string()}, {"shape", ql.weight.shape}};
  json activations = json::object();
  const Model& m = qm.model;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    for (int site = 0; site < kInputSites; ++site) {
      const ActivationQuant& a = m.layers[i].act[static_cast<size_t>(site)];
      if (a.mode == ActQuantMode::None) continue;
      const std::string key = activation_key(m.config, static_cast<int64_t>(i), site);
      with_context(fmt::format("activation quantizer \"{}\"", key), [&] { check_activation(a); });
      activations[key] = activation_json(a);
    }
  }
  json transforms = json::object();
  for (size_t i = 0; i < m.layers.size(); ++i) {
    for (int site = 0; site < kInputSites; ++site) {
      const InputTransform& t = m.layers[i].transform[static_cast<size_t>(site)];
      if (!t.active()) continue;
      const std::string key = activation_key(m.config, static_cast<int64_t>(i), site);
      with_context(fmt::format("input transform \"{}\"", key), [&] { check_transform(t, site_width(m.config, site)); });
      transforms[key] = {{"size", t.size}, {"hadamard_block", t.block}};
    }
  }
  qc["layers"] = std::move(layers);
  qc["activations"] = std::move(activations);
  if (!transforms.empty()) qc["transforms"] = std::move(transforms);
  return qc;
}

// ---------------------------------------------------------------------------
// Loading.

quant::Scheme parse_layer_entry(const json& entry, const LinearLayer& l) {
  check_keys(entry, {"scheme", "shape"});
  const json& spec = require(entry, "scheme");
  QF_CHECK(spec.is_string(), "\"scheme\" must be a string, got {}", show(spec));
  const quant::Scheme scheme = with_context("\"scheme\"", [&] { return quant::Scheme::parse(spec.get<std::string>()); });
  const json& shape = require(entry, "shape");
  const json want = Shape{l.out_features, l.in_features};
  QF_CHECK(shape == want, "\"shape\" {} disagrees with the model's layer [out, in] = {}", show(shape), want.dump());
  return scheme;
}

struct SiteQuant {
  int64_t layer = 0;
  int site = 0;
  ActivationQuant quant;
};

struct SiteTransform {
  int64_t layer = 0;
  int site = 0;
  std::string key;
  InputTransform transform;  // without its mix (a tensor)
};

struct ParsedQuantConfig {
  std::map<std::string, quant::Scheme> schemes;
  std::vector<SiteQuant> activations;
  std::vector<SiteTransform> transforms;
  json info = json::object();
};

ParsedQuantConfig parse_quantization_config(const json& config, const ModelConfig& mc,
                                            const std::map<std::string, LinearLayer>& known) {
  const json& qc = require(config, "quantization_config");
  QF_CHECK(qc.is_object(), "\"quantization_config\" must be an object, got {}", show(qc));
  return with_context("quantization_config", [&] {
    ParsedQuantConfig out;
    QF_CHECK(require(qc, "quant_method") == kQuantMethod, "\"quant_method\" is {}, expected \"{}\"",
             show(qc.at("quant_method")), kQuantMethod);
    const int64_t version = require_int(qc, "format_version");
    QF_CHECK(version == kFormatVersion, "\"format_version\" {} is not supported (this build reads {})", version,
             kFormatVersion);
    const json& layers = require(qc, "layers");
    QF_CHECK(layers.is_object(), "\"layers\" must be an object, got {}", show(layers));
    // Plain loop variables, not structured bindings: clang 14 (the fuzz build)
    // cannot capture a binding in the lambdas below.
    for (const auto& item : layers.items()) {
      const std::string& name = item.key();
      const json& entry = item.value();
      const auto it = known.find(name);
      QF_CHECK(it != known.end(), "\"layers\": {} is not a linear layer of this {} model", quote(name),
               mc.model_type);
      out.schemes.emplace(name, with_context(fmt::format("\"layers\" {}", quote(name)),
                                             [&] { return parse_layer_entry(entry, it->second); }));
    }
    std::map<std::string, std::pair<int64_t, int>> sites;
    for (int64_t l = 0; l < mc.n_layers; ++l)
      for (int s = 0; s < kInputSites; ++s) sites.emplace(activation_key(mc, l, s), std::pair{l, s});
    const json& acts = require(qc, "activations");
    QF_CHECK(acts.is_object(), "\"activations\" must be an object, got {}", show(acts));
    for (const auto& item : acts.items()) {
      const std::string& key = item.key();
      const json& entry = item.value();
      const auto site = sites.find(key);
      QF_CHECK(site != sites.end(), "\"activations\": unknown site {} (expected {}.attn_in ... {}.ffn_hidden)",
               quote(key), block_prefix(mc, 0), block_prefix(mc, mc.n_layers - 1));
      out.activations.push_back({site->second.first, site->second.second,
                                 with_context(fmt::format("\"activations\" {}", quote(key)),
                                              [&] { return parse_activation(entry); })});
    }
    if (qc.contains("transforms")) {
      const json& tr = qc.at("transforms");
      QF_CHECK(tr.is_object(), "\"transforms\" must be an object, got {}", show(tr));
      for (const auto& item : tr.items()) {
        const std::string& key = item.key();
        const json& entry = item.value();
        const auto site = sites.find(key);
        QF_CHECK(site != sites.end(), "\"transforms\": unknown site {} (expected {}.attn_in ... {}.ffn_hidden)",
                 quote(key), block_prefix(mc, 0), block_prefix(mc, mc.n_layers - 1));
        InputTransform t = with_context(fmt::format("\"transforms\" {}", quote(key)), [&] {
          check_keys(entry, {"size", "hadamard_block"});
          InputTransform x;
          x.size = require_int(entry, "size");
          x.block = require_int(entry, "hadamard_block");
          QF_CHECK(x.size == site_width(mc, site->second.second), "size {} disagrees with the site's width {}",
                   x.size, site_width(mc, site->second.second));
          QF_CHECK(x.block > 0 && (x.block & (x.block - 1)) == 0 && x.size % x.block == 0,
                   "hadamard_block {} is not a power of two dividing {}", x.block, x.size);
          return x;
        });
        out.transforms.push_back({site->second.first, site->second.second, key, std::move(t)});
      }
    }
    for (const auto& [key, value] : qc.items()) {
      bool reserved = false;
      for (const char* r : kReservedKeys) reserved = reserved || key == r;
      if (!reserved) out.info[key] = value;
    }
    return out;
  });
}

void check_tensor(const std::string& name, const Tensor& t, DType dtype, const Shape& shape) {
  QF_CHECK(t.dtype() == dtype && t.shape() == shape, "tensor \"{}\" is {} {}, expected {} {}", name,
           dtype_name(t.dtype()), shape_to_string(t.shape()), dtype_name(dtype), shape_to_string(shape));
}

DType scale_dtype(quant::ScaleFormat f) {
  switch (f) {
    case quant::ScaleFormat::F32: return DType::F32;
    case quant::ScaleFormat::F16: return DType::F16;
    case quant::ScaleFormat::Pow2: return DType::I8;
  }
  return DType::F32;
}

quant::QuantizedTensor take_quantized(TensorPool& pool, const LinearLayer& l, const quant::Scheme& scheme) {
  const std::string why = fmt::format("layer {} is {}", l.name, scheme.to_string());
  quant::QuantizedTensor q;
  q.scheme = scheme;
  q.shape = {l.out_features, l.in_features};
  q.codes = pool.take(l.name + kCodes, why);
  q.scales = pool.take(l.name + kScales, why);
  check_tensor(l.name + kCodes, q.codes, DType::U8,
               {l.out_features, static_cast<int64_t>(quant::packed_bytes(l.in_features, scheme.bits))});
  const Shape scale_shape = scheme.granularity == quant::Granularity::Tensor
                                ? Shape{1, 1}
                                : Shape{l.out_features, scheme.groups_per_row(l.in_features)};
  check_tensor(l.name + kScales, q.scales, scale_dtype(scheme.scale_format), scale_shape);
  if (has_zero_points(scheme)) {
    q.zero_points = pool.take(l.name + kZeros, why);
    check_tensor(l.name + kZeros, q.zero_points, DType::U8, scale_shape);
  } else {
    QF_CHECK(!pool.has(l.name + kZeros), "unexpected tensor \"{}{}\" (scheme {} has no zero points)", l.name, kZeros,
             scheme.to_string());
  }
  QF_CHECK(!pool.has(l.name + ".weight"), "unexpected tensor \"{}.weight\" (the layer is quantized)", l.name);
  with_context(fmt::format("layer \"{}\"", l.name), [&] { q.validate(); });
  check_stored_params(l.name, q);
  return q;
}

// Quantized tensors of layers config.json does not list would otherwise be
// reported by build_model as merely "unexpected".
void check_no_stray_quantized(const std::vector<formats::NamedTensor>& rest) {
  for (const auto& nt : rest) {
    for (const std::string& suffix : {kCodes, kScales, kZeros}) {
      QF_CHECK(!nt.name.ends_with(suffix), "unexpected tensor {}: its layer has no quantization_config.layers entry",
               quote(nt.name));
    }
  }
}

}  // namespace

void save_quantized_folder(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                           const std::string& source) {
  // Everything is checked and assembled before the first byte is written.
  const std::map<std::string, LinearLayer> known = linears_by_name(qm.model.config);
  check_linears(qm, known);
  const Model stored = with_bias_groups(qm.model);
  json config = stored.config.to_hf_json();
  config["quantization_config"] = quantization_config(qm);
  std::vector<formats::NamedTensor> tensors = checkpoint_tensors(stored, qm);
  for (size_t i = 0; i < qm.model.layers.size(); ++i)
    for (int site = 0; site < kInputSites; ++site) {
      const InputTransform& t = qm.model.layers[i].transform[static_cast<size_t>(site)];
      if (t.active() && !t.mix.empty())
        tensors.push_back({activation_key(qm.model.config, static_cast<int64_t>(i), site) + kTransformMix, t.mix});
    }

  create_output_folder(dir);
  formats::write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_config_json(dir, config);
  write_tokenizer_files(dir, vocab, source);
}

bool is_qforge_quantized(const std::string& path) { return quant_method_of(path) == kQuantMethod; }

QuantizedModel load_quantized_folder(const std::string& path) {
  const fs::path folder = checkpoint_folder(path);
  const std::string config_file = (folder / "config.json").string();
  const std::string weights_file = (folder / "model.safetensors").string();
  const json config = read_config_file(config_file);
  const ModelConfig mc = ModelConfig::from_hf_json(config, config_file);
  const std::map<std::string, LinearLayer> known = linears_by_name(mc);
  ParsedQuantConfig parsed = with_context(config_file, [&] { return parse_quantization_config(config, mc, known); });

  QuantizedModel qm;
  qm.info = std::move(parsed.info);
  TensorPool pool(formats::read_safetensors(weights_file).tensors);
  std::set<std::string> external;
  with_context(weights_file, [&] {
    for (const LinearLayer& l : all_linears(mc)) {  // model order, not name order
      const auto it = parsed.schemes.find(l.name);
      if (it == parsed.schemes.end()) continue;
      qm.linears.push_back({l.name, take_quantized(pool, l, it->second)});
      external.insert(l.name + ".weight");
    }
  });
  for (SiteTransform& st : parsed.transforms) {
    with_context(weights_file, [&] {
      const std::string name = st.key + kTransformMix;
      if (st.transform.size != st.transform.block)
        st.transform.mix = pool.take(name, fmt::format("transform {} mixes {} blocks", st.key,
                                                       st.transform.size / st.transform.block));
      else
        QF_CHECK(!pool.has(name), "unexpected tensor \"{}\" (the transform is a pure Hadamard)", name);
      with_context(fmt::format("tensor \"{}\"", name), [&] { check_transform(st.transform, st.transform.size); });
    });
  }
  const std::vector<formats::NamedTensor> rest = pool.rest();
  with_context(weights_file, [&] { check_no_stray_quantized(rest); });
  qm.model = build_model(mc, rest, weights_file, external);
  for (const SiteQuant& sq : parsed.activations)
    qm.model.layers[static_cast<size_t>(sq.layer)].act[static_cast<size_t>(sq.site)] = sq.quant;
  for (const SiteTransform& st : parsed.transforms)
    qm.model.layers[static_cast<size_t>(st.layer)].transform[static_cast<size_t>(st.site)] = st.transform;
  return qm;
}

Model dequantized_model(const QuantizedModel& qm) {
  Model m = qm.model;
  const std::map<std::string, LinearLayer> known = linears_by_name(m.config);
  QF_CHECK(static_cast<int64_t>(m.layers.size()) == m.config.n_layers, "the model has {} layers, its config {}",
           m.layers.size(), m.config.n_layers);
  for (const QuantizedLinear& ql : qm.linears) {
    const auto it = known.find(ql.name);
    QF_CHECK(it != known.end(), "{} is not a linear layer of this {} model", quote(ql.name), m.config.model_type);
    const LinearLayer& l = it->second;
    linear_weight(m.layers[static_cast<size_t>(l.layer)], l.kind) = weight_to_stored(l, quant::dequantize(ql.weight));
  }
  return m;
}

}  // namespace qf::model
