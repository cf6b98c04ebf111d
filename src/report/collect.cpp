#include "report/collect.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "analysis/tensor_stats.h"
#include "core/error.h"
#include "model/linear_layers.h"
#include "model/quantized_formats.h"
#include "report/histograms.h"
#include "report/layer_errors.h"
#include "report/token_kld.h"
#include "tokenizer/tokenizer.h"

namespace qf::report {
namespace {

using nlohmann::ordered_json;

// Six significant digits: what a chart or tooltip can show, and it keeps the
// embedded JSON small (a float's shortest double form has ~17 digits).
ordered_json num(double v) {
  if (!std::isfinite(v)) return nullptr;
  return std::stod(fmt::format("{:.6g}", v));
}

ordered_json nums(const std::vector<float>& v) {
  ordered_json a = ordered_json::array();
  for (float x : v) a.push_back(num(x));
  return a;
}

ordered_json hist_json(const HistogramData& h) {
  return {{"lo", num(h.lo)}, {"width", num(h.width)}, {"counts", h.counts}, {"min", num(h.min)}, {"max", num(h.max)}};
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  QF_CHECK(in.good(), "{}: cannot open the text", path);
  std::stringstream ss;
  ss << in.rdbuf();
  QF_CHECK(!in.bad(), "{}: read error", path);
  return ss.str();
}

// Sorted quantiles and mean of the per-token divergences.
double quantile(std::vector<float> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto k = static_cast<size_t>(std::clamp(std::ceil(q * static_cast<double>(v.size())) - 1.0, 0.0,
                                                static_cast<double>(v.size() - 1)));
  return v[k];
}
double mean_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

// The rows that predict tokens of the text (the last row predicts beyond it).
Tensor scored_rows(const Tensor& logits) {
  const int64_t rows = logits.dim(0) - 1, n = logits.dim(1);
  return Tensor::view(DType::F32, {rows, n}, logits.data<float>(), nullptr);
}

void put_top(ordered_json& j, const std::vector<TopK>& top, std::set<int32_t>& shown) {
  ordered_json ids = ordered_json::array(), probs = ordered_json::array();
  for (const TopK& t : top) {
    ids.push_back(t.ids);
    probs.push_back(nums(t.probs));
    shown.insert(t.ids.begin(), t.ids.end());
  }
  j["top_ids"] = std::move(ids);
  j["top_probs"] = std::move(probs);
}

std::string display_name(const std::string& path, std::set<std::string>& used) {
  std::filesystem::path p(path);
  if (!p.has_filename()) p = p.parent_path();
  std::string base = p.filename().string();
  if (base.empty()) base = path;
  std::string name = base;
  for (int i = 2; used.count(name); ++i) name = fmt::format("{}-{}", base, i);
  used.insert(name);
  return name;
}

}  // namespace

ordered_json collect_report(const ReportOptions& o) {
  QF_CHECK(o.max_tokens >= 2, "--max-tokens must be at least 2, got {}", o.max_tokens);
  QF_CHECK(o.top_k >= 1, "top-k must be at least 1, got {}", o.top_k);
  // Cheap checks first: a wrong path should not wait for the forward passes.
  for (const std::string& path : o.compare) {
    with_context(path, [&] {
      QF_CHECK(model::is_quantized_checkpoint(path),
               "not a quantized checkpoint (a qforge, GPTQ, AWQ or compressed-tensors folder)");
    });
  }
  const std::string text = read_text(o.text);
  const model::Model fp32 = model::load_model(o.model);
  const auto tok = tokenizer::make_tokenizer(model::load_vocab(o.model));
  std::vector<int32_t> tokens = tok->encode(text, true);
  int64_t cap = o.max_tokens;
  if (fp32.config.max_positions > 0) cap = std::min(cap, fp32.config.max_positions);
  if (static_cast<int64_t>(tokens.size()) > cap) tokens.resize(static_cast<size_t>(cap));
  QF_CHECK(tokens.size() >= 2, "{}: the text gives {} token(s); at least 2 are needed to score one", o.text,
           tokens.size());
  const auto T = static_cast<int64_t>(tokens.size());
  const int64_t kld_tokens = std::min<int64_t>(o.layer_kld_tokens, T);

  ordered_json out;
  out["format"] = "qforge-report";
  out["version"] = 1;
  out["model"] = {{"path", o.model},
                  {"model_type", fp32.config.model_type},
                  {"layers", fp32.config.n_layers},
                  {"hidden", fp32.config.hidden_size},
                  {"vocab", fp32.config.vocab_size},
                  {"params", fp32.parameter_count()}};
  out["text"] = {{"path", o.text}, {"tokens", T}, {"scored", T - 1}};
  out["settings"] = {{"max_tokens", o.max_tokens},
                     {"bins", o.bins},
                     {"top_k", o.top_k},
                     {"layer_kld_tokens", kld_tokens >= 2 ? kld_tokens : 0}};
  out["tokens"] = tokens;

  std::set<int32_t> shown(tokens.begin(), tokens.end());
  const Tensor base_logits = forward_logits(fp32, tokens, o.n_threads);
  const Tensor base_scored = scored_rows(base_logits);
  const std::vector<float> base_nll = nll_per_row(base_logits, tokens);
  ordered_json baseline = {{"nll", nums(base_nll)}};
  put_top(baseline, top_k(base_scored, o.top_k), shown);
  out["baseline"] = std::move(baseline);

  // The per-layer contributions run on a prefix of the text, cheaper.
  const std::span<const int32_t> kld_span(tokens.data(), static_cast<size_t>(std::max<int64_t>(kld_tokens, 0)));
  Tensor kld_base;
  if (kld_tokens >= 2) kld_base = forward_logits(fp32, kld_span, o.n_threads);

  std::vector<std::vector<LayerError>> errors;
  std::vector<model::QuantizedModel> qms;
  std::vector<bool> scaled;  // per compared model: channel scales folded into the norms
  ordered_json models = ordered_json::array();
  std::set<std::string> names;
  for (const std::string& path : o.compare) {
    qms.push_back(model::load_quantized(path));
    const model::QuantizedModel& qm = qms.back();
    std::vector<LayerError> layers = layer_errors(fp32, qm);
    const model::Model deq = model::dequantized_model(qm);
    const bool unscaled = norms_match(fp32, qm.model);
    scaled.push_back(!unscaled);
    if (kld_tokens >= 2 && unscaled) add_kld_contributions(fp32, deq, kld_span, kld_base, layers, o.n_threads);

    const Tensor logits = forward_logits(deq, tokens, o.n_threads);
    const std::vector<float> kld = kld_per_row(base_scored, scored_rows(logits));
    const std::vector<float> nll = nll_per_row(logits, tokens);
    const std::vector<TopK> top = top_k(scored_rows(logits), o.top_k);
    const std::vector<TopK> base_top1 = top_k(base_scored, 1);
    int64_t agree = 0;
    for (size_t t = 0; t < top.size(); ++t) agree += top[t].ids[0] == base_top1[t].ids[0] ? 1 : 0;

    ordered_json m;
    m["name"] = display_name(path, names);
    m["path"] = path;
    m["method"] = qm.info.is_object() ? qm.info.value("method", qm.info.value("quant_method", std::string())) : std::string();
    uint64_t qbytes = 0;
    int64_t qparams = 0;
    for (const auto& l : qm.linears) {
      qbytes += l.weight.storage_bytes();
      qparams += shape_numel(l.weight.shape);
    }
    // false: channel scales were folded into the norms (AWQ, SmoothQuant), see norms_match.
    m["norms_match"] = unscaled;
    m["bits_per_weight"] = num(qparams ? 8.0 * static_cast<double>(qbytes) / static_cast<double>(qparams) : 0.0);
    m["bytes"] = qbytes;
    m["summary"] = {{"kld_mean", num(mean_of(kld))},
                    {"kld_p99", num(quantile(kld, 0.99))},
                    {"kld_max", num(quantile(kld, 1.0))},
                    {"top1_agreement", num(static_cast<double>(agree) / static_cast<double>(top.size()))},
                    {"perplexity", num(std::exp(mean_of(nll)))},
                    {"baseline_perplexity", num(std::exp(mean_of(base_nll)))}};
    m["kld"] = nums(kld);
    put_top(m, top, shown);
    ordered_json jl = ordered_json::array();
    for (const LayerError& e : layers) {
      jl.push_back({{"name", e.layer.name},
                    {"block", e.layer.layer},
                    {"kind", model::linear_kind_name(fp32.config, e.layer.kind)},
                    {"site", model::input_site_name(e.layer.site)},
                    {"scheme", e.scheme ? ordered_json(e.scheme->to_string()) : ordered_json(nullptr)},
                    {"bits", e.scheme ? ordered_json(e.scheme->bits) : ordered_json(nullptr)},
                    {"bits_per_weight", num(e.bits_per_weight)},
                    {"sqnr_db", e.scheme ? num(e.metrics.sqnr_db) : ordered_json(nullptr)},
                    {"mse", num(e.metrics.mse)},
                    {"kld", e.kld ? num(*e.kld) : ordered_json(nullptr)}});
    }
    m["layers"] = std::move(jl);
    models.push_back(std::move(m));
    errors.push_back(std::move(layers));
  }
  out["models"] = std::move(models);

  ordered_json weights = ordered_json::array();
  for (const model::LinearLayer& l : model::all_linears(fp32.config)) {
    const Tensor w = model::weight_out_in(l, model::linear_weight(fp32.layers[static_cast<size_t>(l.layer)], l.kind));
    const std::span<const float> values(w.data<float>(), static_cast<size_t>(w.numel()));
    const analysis::TensorStats s = analysis::compute_stats(values);
    ordered_json grids = ordered_json::array();
    for (const auto& layers : errors) {
      const auto it = std::find_if(layers.begin(), layers.end(), [&](const LayerError& e) { return e.layer.name == l.name; });
      grids.push_back(it != layers.end() && it->scheme ? nums(it->grid) : ordered_json(nullptr));
    }
    weights.push_back({{"name", l.name},
                       {"block", l.layer},
                       {"kind", model::linear_kind_name(fp32.config, l.kind)},
                       {"shape", w.shape()},
                       {"stats",
                        {{"mean", num(s.mean)}, {"std", num(s.std)}, {"kurtosis", num(s.kurtosis)},
                         {"outliers_6sd", s.outliers}}},
                       {"hist", hist_json(histogram_of(values, o.bins))},
                       {"grids", std::move(grids)}});
  }
  out["weights"] = std::move(weights);

  ordered_json acts = ordered_json::array();
  for (const SiteActivations& a : site_activations(fp32, tokens, o.bins, o.n_threads)) {
    ordered_json grids = ordered_json::array();
    // A model with smoothing folded in quantizes x / s, not the fp32 x drawn
    // here: its grid would be drawn on the wrong distribution, so it is left out.
    for (size_t k = 0; k < qms.size(); ++k) {
      const model::ActivationQuant& aq = qms[k].model.layers[static_cast<size_t>(a.block)].act[static_cast<size_t>(a.site)];
      grids.push_back(scaled[k] ? ordered_json::array() : nums(activation_levels(aq)));
    }
    acts.push_back({{"block", a.block},
                    {"site", model::input_site_name(a.site)},
                    {"channels", a.stats.channels},
                    {"hist", hist_json(a.hist)},
                    {"grids", std::move(grids)},
                    {"kurtosis", num(a.stats.kurtosis)},
                    {"absmax", num(a.stats.absmax)},
                    {"max_median_ratio", num(a.stats.max_median_ratio)},
                    {"outlier_channels", a.stats.outlier_channels},
                    {"channel_absmax", nums(a.stats.channel_absmax)}});
  }
  out["activations"] = std::move(acts);

  ordered_json pieces = ordered_json::object();
  for (int32_t id : shown) pieces[std::to_string(id)] = tok->token_to_piece(id);
  out["pieces"] = std::move(pieces);
  return out;
}

}  // namespace qf::report
