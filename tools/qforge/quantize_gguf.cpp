#include "quantize_gguf.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <set>

#include "algo/importance.h"
#include "core/error.h"
#include "formats/gguf_grid.h"
#include "formats/gguf_model.h"
#include "formats/gguf_recipe.h"
#include "model/linear_layers.h"
#include "model/quantized_checkpoint.h"

namespace qf::cli {
namespace {

// "^(a|b)$" over module names, dots escaped: the layers the pipeline leaves
// float because the mixture gives them another type.
std::string exact_names_regex(const std::vector<std::string>& names) {
  std::string r = "^(";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) r += "|";
    for (const char ch : names[i]) {
      if (ch == '.') r += '\\';
      r += ch;
    }
  }
  return r + ")$";
}

}  // namespace

quant::Scheme gguf_pipeline_scheme(const std::string& recipe_spec, algo::Method method) {
  const formats::GgufRecipe recipe = formats::parse_gguf_recipe(recipe_spec);
  QF_CHECK(method != algo::Method::SmoothQuant,
           "--format gguf holds weights only; smoothquant's int8 activations have no place in it");
  const auto grid = formats::ggml_grid_scheme(recipe.base);
  if (method == algo::Method::Rtn) return grid.value_or(quant::Scheme::parse("int8:g32:f16scale"));
  QF_CHECK(grid, "--method {} with --format gguf writes the codes it chose into blocks, which needs a mixture whose "
                 "grid is a scheme: q4_0 (int4:g32:full:f16scale), q5_0 (int5:g32:full:f16scale) or q8_0 "
                 "(int8:g32:f16scale); {} has none",
           algo::method_name(method), recipe.name);
  return *grid;
}

void write_quantized_gguf(const GgufQuantizeRequest& r) {
  const model::Model& m = *r.model;
  const algo::QuantizeOptions& q = r.pipeline;
  QF_CHECK(!q.acts.enabled, "--format gguf holds weights only: drop --acts");
  model::require_no_online_transforms(m, "--format gguf");
  QF_CHECK(q.budget_bpw <= 0.0, "--format gguf uses llama.cpp's mixtures (--weights q4_k_m, ...), not --budget-bpw");
  QF_CHECK(q.skip.empty(), "--format gguf: the mixture decides each tensor's type; --skip is not supported");
  QF_CHECK(r.output.ends_with(".gguf"), "--format gguf writes one file: give -o OUT.gguf, got '{}'", r.output);

  formats::GgufModelWriteOptions options;
  options.recipe = formats::parse_gguf_recipe(r.recipe);
  const bool calibrated = r.calibration && !r.calibration->empty();
  if (calibrated) options.importance = algo::input_mean_squares(m, *r.calibration, q.n_threads);

  model::Model written = m;
  std::string method = std::string(algo::method_name(q.method));
  size_t from_pipeline = 0;
  if (q.method != algo::Method::Rtn || q.bias_correction) {
    QF_CHECK(formats::ggml_grid_scheme(options.recipe->base) && r.calibration,
             "--bias-correction with --format gguf needs q4_0, q5_0 or q8_0 and --calib");
    // The pipeline rounds the layers the mixture gives the grid's type; the
    // others stay float here and are encoded by the writer.
    const auto types = formats::gguf_model_tensor_types(m.config, m.named_tensors(), options);
    std::map<std::string, formats::GgmlType> by_name;
    for (const auto& t : types)
      for (const std::string& part : t.hf_parts) by_name[part] = t.type;  // Phi-3's fused q/k/v: one type
    std::vector<std::string> keep_float;
    for (const model::LinearLayer& l : model::all_linears(m.config))
      if (by_name.at(l.name + ".weight") != options.recipe->base) keep_float.push_back(l.name);
    algo::QuantizeOptions p = q;
    if (!keep_float.empty()) p.skip = exact_names_regex(keep_float);
    algo::QuantizeReport report;
    const model::QuantizedModel qm = algo::quantize_model(m, *r.calibration, p, &report);
    written = model::dequantized_model(qm);  // AWQ's scaled norms, corrected biases
    for (const model::QuantizedLinear& ql : qm.linears) {
      auto blocks = formats::gguf_blocks_from_quantized(ql.weight);
      QF_CHECK(blocks, "internal: {} ({}) has no GGUF blocks", ql.name, ql.weight.scheme.to_string());
      options.blocks[ql.name + ".weight"] = std::move(*blocks);
      ++from_pipeline;
    }
    if (r.verbose)
      for (const auto& n : report.notes) fmt::print("note: {}\n", n);
  }

  const std::vector<formats::NamedTensor> tensors = written.named_tensors();
  const auto types = formats::gguf_model_tensor_types(written.config, tensors, options);
  formats::write_gguf_model(r.output, written.config, tensors, r.vocab, options);

  std::map<std::string, int64_t> weights_by_type;
  double bits = 0.0;
  int64_t quantized = 0;
  for (const auto& t : types) {
    if (t.gguf_shape.size() < 2) continue;
    const int64_t n = shape_numel(t.gguf_shape);
    weights_by_type[formats::ggml_type_name(t.type)] += n;
    bits += static_cast<double>(formats::ggml_nbytes(t.type, t.gguf_shape)) * 8.0;
    quantized += n;
    if (r.verbose) fmt::print("{:<32} {:<6} {}\n", t.gguf_name, formats::ggml_type_name(t.type), shape_to_string(t.gguf_shape));
  }
  std::string mix;
  for (const auto& [name, n] : weights_by_type)
    mix += fmt::format("{}{} {:.1f}%", mix.empty() ? "" : ", ", name, 100.0 * static_cast<double>(n) / static_cast<double>(quantized));
  fmt::print("format       gguf {} (general.file_type {})\n", options.recipe->name,
             static_cast<uint32_t>(options.recipe->file_type));
  fmt::print("method       {}{}{}\n", method,
             from_pipeline ? fmt::format(" ({} layers' codes written into blocks as chosen)", from_pipeline) : "",
             calibrated ? ", importance weights from calibration" : "");
  fmt::print("weights      {}; {:.4f} bits per matrix weight\n", mix, quantized ? bits / static_cast<double>(quantized) : 0.0);
  fmt::print("output       {} ({:.2f} MB)\n", r.output, static_cast<double>(std::filesystem::file_size(r.output)) / 1e6);
}

}  // namespace qf::cli
