#include "report/histograms.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "calib/histogram.h"
#include "core/error.h"
#include "quant/affine.h"
#include "quant/codebook.h"
#include "quant/row_codec.h"
#include "runtime/runtime.h"

namespace qf::report {
namespace {

HistogramData to_data(const calib::Histogram& h) {
  HistogramData d;
  d.lo = h.edge(0);
  d.width = h.width();
  d.counts.assign(h.counts().begin(), h.counts().end());
  d.min = h.min();
  d.max = h.max();
  d.total = h.total();
  return d;
}

std::vector<float> sorted_distinct(std::vector<float> v) {
  std::erase_if(v, [](float x) { return !std::isfinite(x); });
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

HistogramData histogram_of(std::span<const float> values, int bins) {
  QF_CHECK(bins >= 2, "a histogram needs at least 2 bins, got {}", bins);
  calib::Histogram h(bins);
  std::vector<float> finite;
  const bool all_finite = std::all_of(values.begin(), values.end(), [](float x) { return std::isfinite(x); });
  if (!all_finite) {
    finite.reserve(values.size());
    for (float x : values)
      if (std::isfinite(x)) finite.push_back(x);
    values = finite;
  }
  if (!values.empty()) h.add(values);
  return to_data(h);
}

std::vector<float> first_group_levels(const quant::QuantizedTensor& q) {
  const quant::ParamGrid grid = quant::stored_params(q);
  QF_CHECK(!grid.params.empty(), "quantized tensor without scale groups");
  const quant::GroupParams& p = grid.params.front();
  const quant::Scheme& s = q.scheme;
  std::vector<float> levels;
  if (s.format == quant::Format::Int) {
    const quant::AffineParams a = quant::affine_params(p, s);
    for (int32_t v = a.qmin; v <= a.qmax; ++v) levels.push_back(quant::affine_dequantize(v, a));
  } else {
    for (float v : quant::Codebook::get(s.format).values()) levels.push_back(p.scale * v);
  }
  return sorted_distinct(std::move(levels));
}

std::vector<float> activation_levels(const model::ActivationQuant& a) {
  if (a.mode != model::ActQuantMode::StaticTensor) return {};
  const quant::CodeRange r = quant::int_code_range(a.bits, a.symmetric, false);
  std::vector<float> levels;
  for (int32_t v = r.qmin; v <= r.qmax; ++v) levels.push_back(a.scale * static_cast<float>(v - a.zero_point));
  return sorted_distinct(std::move(levels));
}

std::vector<SiteActivations> site_activations(const model::Model& model, std::span<const int32_t> tokens, int bins,
                                              int n_threads) {
  QF_CHECK(bins >= 2, "a histogram needs at least 2 bins, got {}", bins);
  struct Acc {
    calib::Histogram hist;
    analysis::ActivationStats stats;
  };
  std::map<std::pair<int64_t, int>, std::unique_ptr<Acc>> acc;
  runtime::RuntimeOptions opt;
  opt.n_threads = n_threads;
  opt.context = static_cast<int64_t>(tokens.size());
  runtime::Runtime rt(model, opt);
  rt.set_linear_input_hook([&](int64_t layer, model::InputSite site, const float* x, int64_t rows, int64_t cols) {
    auto& a = acc[{layer, static_cast<int>(site)}];
    if (!a) a = std::make_unique<Acc>(Acc{calib::Histogram(bins), analysis::ActivationStats(cols)});
    const std::span<const float> batch(x, static_cast<size_t>(rows * cols));
    a->stats.add(batch);  // throws on NaN/Inf, so the histogram only sees finite values
    a->hist.add(batch);
  });
  rt.forward(tokens, runtime::Logits::Last);
  std::vector<SiteActivations> out;
  for (const auto& [key, a] : acc)
    out.push_back({key.first, static_cast<model::InputSite>(key.second), to_data(a->hist), a->stats.report()});
  return out;
}

}  // namespace qf::report
