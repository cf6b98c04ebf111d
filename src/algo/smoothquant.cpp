#include "algo/smoothquant.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "algo/channel_scaling.h"
#include "core/error.h"

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

std::vector<SmoothingReport> smooth_block(const model::ModelConfig& config, BlockRunner& runner,
                                          model::LayerWeights& w, double alpha) {
  std::map<InputSite, ChannelStats> stats;
  runner.run(
      w,
      [&](InputSite site, const float* x, int64_t rows, int64_t cols) {
        if (site == InputSite::AttnIn || site == InputSite::FfnIn) stats.try_emplace(site, cols).first->second.add(x, rows);
      },
      InputSite::FfnIn);
  std::vector<SmoothingReport> report;
  for (InputSite site : {InputSite::AttnIn, InputSite::FfnIn}) {
    const ChannelStats& st = stats.at(site);
    std::vector<double> wmax(static_cast<size_t>(st.cols), 0.0);
    for (const model::LinearLayer& l : model::block_linears(config, 0)) {
      if (l.site != site) continue;
      const Tensor wo = model::weight_out_in(l, model::linear_weight(w, l.kind));
      const float* d = wo.data<float>();
      for (int64_t r = 0; r < wo.rows(); ++r)
        for (int64_t j = 0; j < wo.cols(); ++j)
          wmax[static_cast<size_t>(j)] = std::max(wmax[static_cast<size_t>(j)], static_cast<double>(std::fabs(d[r * wo.cols() + j])));
    }
    const std::vector<double> s = smoothing_factors(st.abs_max, wmax, alpha);
    std::vector<double> before(st.abs_max.begin(), st.abs_max.end()), after(before);
    for (size_t j = 0; j < after.size(); ++j) after[j] /= s[j];
    report.push_back({site, max_median_ratio(before), max_median_ratio(after)});
    apply_channel_scales(config, w, site, s);
  }
  return report;
}

}  // namespace qf::algo
