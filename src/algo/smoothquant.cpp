#include "algo/smoothquant.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "algo/channel_scaling.h"
#include "core/error.h"
#include "quant/affine.h"
#include "quant/quantize.h"
#include "runtime/activation_quant.h"

namespace qf::algo {

using model::InputSite;

namespace {

double max_median_ratio(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return median > 0.0 ? v.back() / median : 0.0;
}

}  // namespace

std::vector<double> smoothing_factors(const std::vector<float>& act_max, const std::vector<double>& weight_max,
                                      double alpha) {
  QF_CHECK(act_max.size() == weight_max.size(), "{} activation channels but {} weight channels", act_max.size(),
           weight_max.size());
  QF_CHECK(alpha >= 0.0 && alpha <= 1.0, "SmoothQuant alpha {} outside [0, 1]", alpha);
  std::vector<double> s(act_max.size());
  for (size_t j = 0; j < s.size(); ++j) {
    const double a = std::max(static_cast<double>(act_max[j]), 1e-5);
    const double w = std::max(weight_max[j], 1e-5);
    s[j] = std::max(std::pow(a, alpha) / std::pow(w, 1.0 - alpha), 1e-5);
  }
  return s;
}

namespace {

struct SiteData {
  ChannelStats stats;
  std::vector<float> sample;  // [n, cols]
};

// Mean squared difference between X W^T and the simulated W8A8 output for
// the site's layers after smoothing by s.
double simulated_error(const model::ModelConfig& config, const model::LayerWeights& w, InputSite site,
                       const SiteData& d, const std::vector<double>& s, const SmoothingOptions& o) {
  const int64_t cols = d.stats.cols, n = static_cast<int64_t>(d.sample.size()) / cols;
  std::vector<float> xs(d.sample.size());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < cols; ++j)
      xs[static_cast<size_t>(t * cols + j)] = static_cast<float>(d.sample[static_cast<size_t>(t * cols + j)] / s[static_cast<size_t>(j)]);
  model::ActivationQuant aq = o.acts;
  if (aq.mode == model::ActQuantMode::StaticTensor) {
    float amax = 0.0f, lo = 0.0f, hi = 0.0f;
    for (float v : xs) {
      amax = std::max(amax, std::fabs(v));
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    quant::Scheme t;
    t.bits = aq.bits;
    t.symmetric = aq.symmetric;
    t.granularity = quant::Granularity::Tensor;
    const quant::AffineParams p = quant::affine_params_from_range(aq.symmetric ? -amax : lo, aq.symmetric ? amax : hi, t);
    aq.scale = p.scale;
    aq.zero_point = p.zero_point;
  }
  std::vector<float> xq(xs.size());
  runtime::fake_quantize_activations(xs.data(), n, cols, aq, xq.data());
  double err = 0.0;
  int64_t count = 0;
  for (const model::LinearLayer& l : model::block_linears(config, 0)) {
    if (l.site != site) continue;
    const Tensor wo = model::weight_out_in(l, model::linear_weight(w, l.kind));
    const Tensor wq = quant::fake_quantize(scale_input_columns(wo, s), o.weights);
    const float* a = wo.data<float>();
    const float* b = wq.data<float>();
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < l.out_features; ++r) {
        double ref = 0.0, got = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          ref += static_cast<double>(d.sample[static_cast<size_t>(t * cols + j)]) * a[r * cols + j];
          got += static_cast<double>(xq[static_cast<size_t>(t * cols + j)]) * b[r * cols + j];
        }
        err += (ref - got) * (ref - got);
        ++count;
      }
  }
  return err / static_cast<double>(std::max<int64_t>(count, 1));
}

}  // namespace

std::vector<SmoothingReport> smooth_block(const model::ModelConfig& config, BlockRunner& runner,
                                          model::LayerWeights& w, const SmoothingOptions& o) {
  const int64_t every = std::max<int64_t>(1, runner.tokens() / std::max<int64_t>(o.sample_tokens, 1));
  std::map<InputSite, SiteData> data;
  std::map<InputSite, int64_t> seen;
  runner.run(w, [&](InputSite site, const float* x, int64_t rows, int64_t cols) {
    // Behind an online rotation the producer's scale would not commute with the transform.
    if (!can_scale_site(config, site) || w.transform[static_cast<size_t>(site)].active()) return;
    SiteData& d = data.try_emplace(site, SiteData{ChannelStats(cols), {}}).first->second;
    d.stats.add(x, rows);
    int64_t& base = seen[site];
    for (int64_t r = 0; r < rows; ++r)
      if ((base + r) % every == 0) d.sample.insert(d.sample.end(), x + r * cols, x + (r + 1) * cols);
    base += rows;
  });
  std::vector<SmoothingReport> report;
  for (InputSite site : {InputSite::AttnIn, InputSite::AttnOut, InputSite::FfnIn, InputSite::FfnHidden}) {
    if (!data.count(site)) continue;
    const SiteData& d = data.at(site);
    std::vector<double> wmax(static_cast<size_t>(d.stats.cols), 0.0);
    for (const model::LinearLayer& l : model::block_linears(config, 0)) {
      if (l.site != site) continue;
      const Tensor wo = model::weight_out_in(l, model::linear_weight(w, l.kind));
      const float* p = wo.data<float>();
      for (int64_t r = 0; r < wo.rows(); ++r)
        for (int64_t j = 0; j < wo.cols(); ++j)
          wmax[static_cast<size_t>(j)] = std::max(wmax[static_cast<size_t>(j)], static_cast<double>(std::fabs(p[r * wo.cols() + j])));
    }
    const std::vector<double> ones(wmax.size(), 1.0);
    SmoothingReport rep{site, false, 0.0, 0.0, 0.0, 0.0, 0.0};
    rep.error_unsmoothed = rep.error = simulated_error(config, w, site, d, ones, o);
    std::vector<double> best = ones;
    bool smoothed = false;
    for (double alpha : o.alphas) {
      const std::vector<double> s = smoothing_factors(d.stats.abs_max, wmax, alpha);
      const double err = simulated_error(config, w, site, d, s, o);
      if (err < rep.error) {
        rep.error = err;
        rep.alpha = alpha;
        best = s;
        smoothed = true;
      }
    }
    rep.smoothed = smoothed;
    std::vector<double> before(d.stats.abs_max.begin(), d.stats.abs_max.end()), after(before);
    for (size_t j = 0; j < after.size(); ++j) after[j] /= best[j];
    rep.act_max_ratio_before = max_median_ratio(before);
    rep.act_max_ratio_after = max_median_ratio(after);
    report.push_back(rep);
    if (smoothed) apply_channel_scales(config, w, site, best);
  }
  return report;
}

}  // namespace qf::algo
