#include "algo/quantize_model.h"

#include <fmt/format.h>

#include <map>
#include <memory>
#include <optional>
#include "core/regex.h"

#include "algo/bit_allocation.h"
#include "algo/block_runner.h"
#include "algo/sensitivity.h"
#include "algo/smoothquant.h"
#include "core/error.h"
#include "model/linear_layers.h"

namespace qf::algo {

using model::InputSite;
using model::LinearLayer;

Method parse_method(std::string_view name) {
  if (name == "rtn") return Method::Rtn;
  if (name == "gptq") return Method::Gptq;
  if (name == "awq") return Method::Awq;
  if (name == "smoothquant") return Method::SmoothQuant;
  fail("unknown quantization method '{}' (valid: rtn, gptq, awq, smoothquant)", name);
}

std::string_view method_name(Method m) {
  switch (m) {
    case Method::Rtn: return "rtn";
    case Method::Gptq: return "gptq";
    case Method::Awq: return "awq";
    case Method::SmoothQuant: return "smoothquant";
  }
  return "?";
}

bool needs_calibration(const QuantizeOptions& o) {
  return o.method != Method::Rtn || o.bias_correction || o.budget_bpw > 0.0 ||
         (o.acts.enabled && o.acts.mode == model::ActQuantMode::StaticTensor);
}

std::vector<quant::Scheme> default_mp_candidates() {
  std::vector<quant::Scheme> out;
  for (const char* s : {"int2:g32:asym:f16scale", "int2:g16:asym:f16scale", "int3:g64:f16scale", "int3:g32:f16scale",
                        "int3:g32:asym:f16scale", "int4:g64:f16scale", "int4:g32:f16scale", "int8:g32:f16scale"})
    out.push_back(quant::Scheme::parse(s));
  return out;
}

double QuantizeReport::bits_per_weight() const {
  double bits = 0.0;
  for (const auto& l : layers) bits += l.bits_per_weight * static_cast<double>(l.weights);
  const int64_t n = quantized_weights();
  return n ? bits / static_cast<double>(n) : 0.0;
}

int64_t QuantizeReport::quantized_weights() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.weights;
  return n;
}

namespace {

struct LayerPlan {
  LinearLayer layer;
  quant::Scheme scheme;
  double sensitivity = -1.0;
};

void say(const QuantizeOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

void check_options(const model::ModelConfig& c, const QuantizeOptions& o,
                   const std::vector<calib::TokenSequence>& calibration) {
  o.weights.validate();
  if (o.method == Method::Awq) {
    std::vector<quant::Scheme> schemes = {o.weights};
    if (o.budget_bpw > 0.0) schemes = o.mp_candidates.empty() ? default_mp_candidates() : o.mp_candidates;
    for (const quant::Scheme& s : schemes)
      QF_CHECK(s.granularity != quant::Granularity::Tensor,
               "AWQ searches per-channel scales for group-wise or per-channel weights; {} is a per-tensor scheme "
               "(use e.g. int4:g128 or int8:channel)",
               s.to_string());
  }
  if (o.bias_correction) {
    bool any = false;
    for (const model::LinearLayer& l : model::block_linears(c, 0)) any = any || model::can_have_bias(c, l.kind);
    QF_CHECK(any, "--bias-correction: {} checkpoints have no linear-layer biases (transformers would drop them)",
             c.model_type);
  }
  QF_CHECK(o.method != Method::Gptq || o.gptq.damp > 0.0, "GPTQ needs a positive --damp, got {}", o.gptq.damp);
  if (needs_calibration(o))
    QF_CHECK(!calibration.empty(), "{}{} needs calibration data (--calib FILE)", method_name(o.method),
             o.method == Method::Rtn ? " with these options" : "");
  if (o.method == Method::SmoothQuant)
    QF_CHECK(o.acts.enabled, "smoothquant is a W8A8 method: give an activation scheme (--acts int8)");
  if (o.acts.enabled) {
    QF_CHECK(o.acts.bits >= 2 && o.acts.bits <= 8, "activation width {} outside int2..int8", o.acts.bits);
    QF_CHECK(o.acts.mode != model::ActQuantMode::None, "activation quantization needs a mode");
    QF_CHECK(o.acts.mode != model::ActQuantMode::DynamicToken || o.acts.symmetric,
             "dynamic-token activations are symmetric; drop 'asym' or use --act-mode static-tensor");
  }
  QF_CHECK(o.budget_bpw >= 0.0, "--budget-bpw must be positive, got {}", o.budget_bpw);
  QF_CHECK(o.method != Method::Gptq || !o.gptq.act_order || o.gptq.static_groups,
           "GPTQ act-order is supported with static groups only");
}

std::vector<LayerPlan> plan_layers(const model::Model& m, const std::vector<calib::TokenSequence>& calibration,
                                   const QuantizeOptions& o, QuantizeReport& report) {
  std::optional<std::regex> skip;
  if (!o.skip.empty()) {
    try {
      skip.emplace(o.skip, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      fail("bad --skip regular expression '{}': {}", o.skip, e.what());
    }
  }
  std::vector<LayerPlan> plans;
  for (const LinearLayer& l : model::all_linears(m.config)) {
    if (skip && std::regex_search(l.name, *skip)) {
      report.notes.push_back(fmt::format("{} kept in float (--skip)", l.name));
      continue;
    }
    plans.push_back({l, o.weights, -1.0});
  }
  QF_CHECK(!plans.empty(), "--skip '{}' leaves no layer to quantize", o.skip);
  if (o.budget_bpw <= 0.0) return plans;

  const std::vector<quant::Scheme> candidates = o.mp_candidates.empty() ? default_mp_candidates() : o.mp_candidates;
  const size_t n_seq = static_cast<size_t>(std::clamp<int64_t>(o.mp_sequences, 1, static_cast<int64_t>(calibration.size())));
  const std::vector<calib::TokenSequence> seqs(calibration.begin(), calibration.begin() + static_cast<std::ptrdiff_t>(n_seq));
  std::vector<LinearLayer> layers;
  for (const auto& p : plans) layers.push_back(p.layer);
  say(o, fmt::format("mixed precision: measuring {} layers x {} schemes on {} sequences", layers.size(),
                     candidates.size(), seqs.size()));
  const std::vector<LayerSensitivity> sens = measure_sensitivity(m, layers, candidates, seqs, o.n_threads);
  std::vector<std::vector<Candidate>> options;
  double weights = 0.0;
  for (const auto& s : sens) {
    std::vector<Candidate> c;
    for (size_t i = 0; i < candidates.size(); ++i) c.push_back({s.bits[i], std::max(0.0, s.kl[i])});
    options.push_back(std::move(c));
    weights += static_cast<double>(s.layer.in_features * s.layer.out_features);
  }
  double cheapest = 0.0;
  for (const auto& layer : options) {
    double lo = layer.front().cost;
    for (const auto& c : layer) lo = std::min(lo, c.cost);
    cheapest += lo;
  }
  QF_CHECK(cheapest <= o.budget_bpw * weights,
           "--budget-bpw {} is below the cheapest choice of the candidate schemes, {:.4f} bits per weight",
           o.budget_bpw, cheapest / weights);
  const Allocation a = allocate_bits(options, o.budget_bpw * weights);
  for (size_t i = 0; i < plans.size(); ++i) {
    plans[i].scheme = candidates[static_cast<size_t>(a.choice[i])];
    plans[i].sensitivity = sens[i].kl[static_cast<size_t>(a.choice[i])];
  }
  say(o, fmt::format("mixed precision: {:.4f} bits per weight chosen for a budget of {:.4f}", a.cost / weights,
                     o.budget_bpw));
  return plans;
}

// b += (W - Wq) E[x]: the output shift the rounding causes on average.
void correct_bias(const LinearLayer& l, model::LayerWeights& w, const Tensor& wo, const Tensor& deq,
                  const std::vector<double>& mean) {
  Tensor& bias = model::linear_bias(w, l.kind);
  Tensor b = bias.empty() ? Tensor::zeros(DType::F32, {l.out_features}) : bias.to_f32().clone();
  float* bd = b.mutable_data<float>();
  const float* a = wo.data<float>();
  const float* q = deq.data<float>();
  for (int64_t r = 0; r < l.out_features; ++r) {
    double shift = 0.0;
    for (int64_t j = 0; j < l.in_features; ++j)
      shift += (static_cast<double>(a[r * l.in_features + j]) - q[r * l.in_features + j]) * mean[static_cast<size_t>(j)];
    bd[r] = static_cast<float>(bd[r] + shift);
  }
  bias = std::move(b);
}

void configure_activations(BlockRunner* runner, model::LayerWeights& w, const ActivationOptions& a) {
  model::ActivationQuant aq;
  aq.mode = a.mode;
  aq.bits = a.bits;
  aq.symmetric = a.symmetric;
  if (a.mode == model::ActQuantMode::DynamicToken) {
    w.act.fill(aq);
    return;
  }
  quant::Scheme target;
  target.format = quant::Format::Int;
  target.bits = a.bits;
  target.symmetric = a.symmetric;
  target.granularity = quant::Granularity::Tensor;
  calib::ObserverOptions oo;
  oo.kind = a.observer;
  oo.target = target;
  std::map<InputSite, std::unique_ptr<calib::Observer>> observers;
  for (InputSite s : model::kAllInputSites) observers[s] = calib::make_observer(oo);
  runner->run(w, [&](InputSite site, const float* x, int64_t rows, int64_t cols) {
    observers.at(site)->observe(std::span<const float>(x, static_cast<size_t>(rows * cols)), cols);
  });
  for (InputSite s : model::kAllInputSites) {
    const quant::AffineParams p = calib::params_for(*observers.at(s), target).front();
    model::ActivationQuant site_aq = aq;
    site_aq.scale = p.scale;
    site_aq.zero_point = p.zero_point;
    w.act[static_cast<size_t>(s)] = site_aq;
  }
}

nlohmann::json describe(const QuantizeOptions& o, const std::vector<calib::TokenSequence>& calibration) {
  nlohmann::json j;
  j["method"] = method_name(o.method);
  j["weights"] = o.budget_bpw > 0.0 ? "mixed" : o.weights.to_string();
  if (o.method == Method::Gptq)
    j["gptq"] = {{"damp", o.gptq.damp}, {"block_size", o.gptq.block_size}, {"act_order", o.gptq.act_order},
                 {"static_groups", o.gptq.static_groups}, {"true_sequential", true}};
  if (o.method == Method::Awq)
    j["awq"] = {{"grid", o.awq.grid}, {"clip", o.awq.clip}, {"clip_grid", o.awq.clip_grid},
                {"max_shrink", o.awq.max_shrink}};
  if (o.method == Method::SmoothQuant) j["smoothquant"] = {{"alphas", o.smooth_alphas}};
  if (o.acts.enabled) {
    j["acts"] = {{"bits", o.acts.bits},
                 {"symmetric", o.acts.symmetric},
                 {"mode", o.acts.mode == model::ActQuantMode::DynamicToken ? "dynamic-token" : "static-tensor"}};
    if (o.acts.mode == model::ActQuantMode::StaticTensor)
      j["acts"]["observer"] = calib::observer_kind_name(o.acts.observer);
  }
  j["bias_correction"] = o.bias_correction;
  if (o.budget_bpw > 0.0) j["budget_bpw"] = o.budget_bpw;
  if (!o.skip.empty()) j["skip"] = o.skip;
  if (needs_calibration(o) && !calibration.empty())
    j["calibration"] = {{"sequences", calibration.size()}, {"seqlen", calibration.front().size()}};
  return j;
}

}  // namespace

model::QuantizedModel quantize_model(const model::Model& m, const std::vector<calib::TokenSequence>& calibration,
                                     const QuantizeOptions& o, QuantizeReport* report_out) {
  check_options(m.config, o, calibration);
  QuantizeReport local;
  QuantizeReport& report = report_out ? *report_out : local;
  const model::ModelConfig& c = m.config;
  const std::vector<LayerPlan> plans = plan_layers(m, calibration, o, report);

  std::unique_ptr<BlockRunner> runner;
  if (needs_calibration(o)) runner = std::make_unique<BlockRunner>(m, calibration, o.n_threads);

  model::QuantizedModel out;
  out.model = m;
  out.info = describe(o, calibration);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    model::LayerWeights w = m.layers[static_cast<size_t>(l)];
    std::vector<LayerPlan> here;
    for (const auto& p : plans)
      if (p.layer.layer == l) here.push_back(p);
    say(o, fmt::format("block {}/{}", l + 1, c.n_layers));

    if (o.method == Method::SmoothQuant) {
      SmoothingOptions so;
      so.alphas = o.smooth_alphas;
      so.weights = o.weights;
      so.acts.mode = o.acts.mode;
      so.acts.bits = o.acts.bits;
      so.acts.symmetric = o.acts.symmetric;
      for (const SmoothingReport& s : smooth_block(c, *runner, w, so))
        report.notes.push_back(fmt::format("block {} {}: {} (simulated W8A8 output MSE {:.3g}, "
                                           "unsmoothed {:.3g}), max/median channel ratio {:.2f} -> {:.2f}",
                                           l, model::input_site_name(s.site),
                                           s.smoothed ? fmt::format("smoothed with alpha {}", s.alpha) : "not smoothed",
                                           s.error,
                                           s.error_unsmoothed, s.act_max_ratio_before, s.act_max_ratio_after));
    }
    AwqBlockResult awq;
    if (o.method == Method::Awq) {
      std::vector<LinearLayer> ls;
      std::map<std::string, quant::Scheme> schemes;
      for (const auto& p : here) {
        ls.push_back(p.layer);
        schemes[p.layer.name] = p.scheme;
      }
      awq = awq_block(c, *runner, w, ls, [&](const LinearLayer& x) { return schemes.at(x.name); }, o.awq);
      for (const AwqSiteChoice& s : awq.sites)
        report.notes.push_back(fmt::format("block {} {}: AWQ alpha {:.2f}, block output MSE {:.3g} (unscaled {:.3g})",
                                           l, model::input_site_name(s.site), s.alpha, s.error, s.error_at_0));
    }

    for (InputSite site : model::kAllInputSites) {
      std::vector<const LayerPlan*> group;
      for (const auto& p : here)
        if (p.layer.site == site) group.push_back(&p);
      if (group.empty()) continue;
      const int64_t in = group.front()->layer.in_features;
      const bool gptq = o.method == Method::Gptq;
      std::optional<HessianAccumulator> hessian;
      std::optional<ChannelStats> stats;
      if (gptq) hessian.emplace(in);
      if (o.bias_correction) stats.emplace(in);
      if (gptq || o.bias_correction) {
        runner->run(
            w,
            [&](InputSite s, const float* x, int64_t rows, int64_t) {
              if (s != site) return;
              if (hessian) hessian->add(x, rows);
              if (stats) stats->add(x, rows);
            },
            site);
      }
      for (const LayerPlan* p : group) {
        const LinearLayer& ll = p->layer;
        const Tensor wo = model::weight_out_in(ll, model::linear_weight(w, ll.kind));
        LayerReport lr{ll.name, p->scheme.to_string(), 0.0, wo.numel(), p->sensitivity, -1.0};
        quant::QuantizedTensor q;
        if (gptq) {
          GptqResult r = with_context(ll.name, [&] { return gptq_quantize(wo, hessian->matrix(), p->scheme, o.gptq); });
          q = std::move(r.weight);
          lr.damp = r.damp_used;
        } else if (auto it = awq.params.find(ll.name); it != awq.params.end()) {
          q = quant::quantize(wo, p->scheme, it->second);
        } else {
          q = with_context(ll.name, [&] { return quant::quantize(wo, p->scheme); });
        }
        const Tensor deq = quant::dequantize(q);
        if (o.bias_correction && model::can_have_bias(c, ll.kind)) correct_bias(ll, w, wo, deq, stats->mean());
        model::linear_weight(w, ll.kind) = model::weight_to_stored(ll, deq);
        lr.bits_per_weight = q.bits_per_weight();
        report.layers.push_back(lr);
        out.linears.push_back({ll.name, std::move(q)});
      }
    }

    if (o.acts.enabled) configure_activations(runner.get(), w, o.acts);
    if (runner && l + 1 < c.n_layers) runner->advance(w);
    // The codes live in out.linears; the dequantized copies are not kept.
    for (const auto& p : here) model::linear_weight(w, p.layer.kind) = Tensor();
    out.model.layers[static_cast<size_t>(l)] = std::move(w);
  }
  return out;
}

}  // namespace qf::algo
