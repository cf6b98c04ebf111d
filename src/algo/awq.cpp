#include "algo/awq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "algo/channel_scaling.h"
#include "core/error.h"
#include "quant/row_codec.h"

namespace qf::algo {

using model::InputSite;
using model::LinearLayer;

namespace {

double output_mse(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double s = 0.0;
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float* x = a[i].data<float>();
    const float* y = b[i].data<float>();
    for (int64_t j = 0; j < a[i].numel(); ++j) {
      const double d = static_cast<double>(x[j]) - y[j];
      s += d * d;
    }
    n += a[i].numel();
  }
  return s / static_cast<double>(std::max<int64_t>(n, 1));
}

// s = max(mean|x|, 1e-4)^alpha / sqrt(max s * min s), the paper code's normalisation.
std::vector<double> awq_scales(const std::vector<double>& abs_mean, double alpha) {
  std::vector<double> s(abs_mean.size());
  double lo = std::numeric_limits<double>::max(), hi = 0.0;
  for (size_t j = 0; j < s.size(); ++j) {
    s[j] = std::pow(std::max(abs_mean[j], 1e-4), alpha);
    lo = std::min(lo, s[j]);
    hi = std::max(hi, s[j]);
  }
  const double norm = std::sqrt(hi * lo);
  for (double& v : s) v /= norm;
  return s;
}

// Rows sampled evenly from the captured inputs of a site.
struct SiteSample {
  int64_t cols = 0;
  std::vector<float> rows;  // [n, cols]
  int64_t n() const { return cols ? static_cast<int64_t>(rows.size()) / cols : 0; }
};

// Per (row, group) clip ratio minimising || X_g (w_g - q(w_g)) ||^2 over sampled tokens.
// Rows [row_begin, row_end) are searched; the others keep the scheme's own parameters.
quant::ParamGrid clip_search(const Tensor& w_out_in, const quant::Scheme& scheme, const SiteSample& x,
                             const AwqOptions& o, int64_t row_begin, int64_t row_end) {
  const int64_t cols = w_out_in.cols();
  const int64_t groups = scheme.groups_per_row(cols), G = scheme.values_per_scale(cols), n = x.n();
  quant::ParamGrid grid = quant::choose_params(w_out_in, scheme);
  const float* W = w_out_in.data<float>();
  const int steps = static_cast<int>(std::floor(o.max_shrink * o.clip_grid + 1e-9));
  std::vector<float> q(static_cast<size_t>(G));
  std::vector<double> ref(static_cast<size_t>(n));
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * G, len = std::min(G, cols - c0);
      const std::span<const float> wg(W + r * cols + c0, static_cast<size_t>(len));
      const quant::GroupStats st = quant::group_stats(wg);
      for (int64_t t = 0; t < n; ++t) {
        const float* xt = x.rows.data() + t * cols + c0;
        double acc = 0.0;
        for (int64_t j = 0; j < len; ++j) acc += static_cast<double>(xt[j]) * wg[static_cast<size_t>(j)];
        ref[static_cast<size_t>(t)] = acc;
      }
      double best = std::numeric_limits<double>::infinity();
      quant::GroupParams best_p = grid.row(r)[static_cast<size_t>(g)];
      for (int k = 0; k <= steps; ++k) {
        const float ratio = 1.0f - static_cast<float>(k) / static_cast<float>(o.clip_grid);
        const quant::GroupParams p = quant::group_params_from_range(st.min * ratio, st.max * ratio, scheme);
        std::copy(wg.begin(), wg.end(), q.begin());
        quant::fake_quantize_group(std::span<float>(q.data(), static_cast<size_t>(len)), p, scheme);
        double err = 0.0;
        for (int64_t t = 0; t < n; ++t) {
          const float* xt = x.rows.data() + t * cols + c0;
          double acc = 0.0;
          for (int64_t j = 0; j < len; ++j) acc += static_cast<double>(xt[j]) * q[static_cast<size_t>(j)];
          const double d = acc - ref[static_cast<size_t>(t)];
          err += d * d;
        }
        if (err < best) {
          best = err;
          best_p = p;
        }
      }
      grid.row(r)[static_cast<size_t>(g)] = best_p;
    }
  }
  return grid;
}

}  // namespace

AwqBlockResult awq_block(const model::ModelConfig& config, BlockRunner& runner, model::LayerWeights& w,
                         const std::vector<LinearLayer>& linears,
                         const std::function<quant::Scheme(const LinearLayer&)>& scheme_of, const AwqOptions& o) {
  AwqBlockResult result;
  for (const LinearLayer& l : linears)
    QF_CHECK(scheme_of(l).granularity != quant::Granularity::Tensor,
             "AWQ searches per-channel scales for group-wise or per-channel weights; {} has the per-tensor scheme {} "
             "(use e.g. int4:g128 or int8:channel)",
             l.name, scheme_of(l).to_string());

  const int64_t T = runner.hidden().front().dim(0);
  const int64_t search_seqs = std::clamp<int64_t>(o.search_tokens / std::max<int64_t>(T, 1), 1, runner.sequences());
  const int64_t clip_every = std::max<int64_t>(1, runner.tokens() / std::max<int64_t>(o.clip_tokens, 1));

  // One float pass: mean |x| per site over every token, a token sample per
  // site for the clip search, and the reference block outputs.
  std::map<InputSite, ChannelStats> stats;
  std::map<InputSite, SiteSample> samples;
  std::map<InputSite, int64_t> site_seen;
  runner.run(w, [&](InputSite site, const float* x, int64_t rows, int64_t cols) {
    stats.try_emplace(site, cols).first->second.add(x, rows);
    SiteSample& s = samples[site];
    s.cols = cols;
    int64_t& base = site_seen[site];
    for (int64_t r = 0; r < rows; ++r)
      if ((base + r) % clip_every == 0) s.rows.insert(s.rows.end(), x + r * cols, x + (r + 1) * cols);
    base += rows;
  });
  std::vector<Tensor> reference;
  runner.run(w, nullptr, std::nullopt, &reference, search_seqs);

  auto at_site = [&](InputSite site) {
    std::vector<LinearLayer> out;
    for (const LinearLayer& l : linears)
      if (l.site == site) out.push_back(l);
    return out;
  };

  for (InputSite site : model::kAllInputSites) {
    const std::vector<LinearLayer> group = at_site(site);
    // Behind an online rotation the producer's scale would not commute with the transform.
    if (group.empty() || !can_scale_site(config, site) || !stats.count(site) ||
        w.transform[static_cast<size_t>(site)].active())
      continue;
    const std::vector<double> abs_mean = stats.at(site).abs_mean();
    AwqSiteChoice choice{site, 0.0, std::numeric_limits<double>::infinity(), 0.0};
    std::vector<double> best_s(abs_mean.size(), 1.0);
    for (int i = 0; i < o.grid; ++i) {
      const double alpha = static_cast<double>(i) / o.grid;
      const std::vector<double> s = awq_scales(abs_mean, alpha);
      // Q(W diag(s)) diag(s)^-1 applied to the unscaled input equals the
      // folded model's quantized layer: no need to touch the producer here.
      model::LayerWeights trial = w;
      for (const LinearLayer& l : group) {
        const Tensor wo = model::weight_out_in(l, model::linear_weight(w, l.kind));
        const Tensor q = quant::fake_quantize(scale_input_columns(wo, s), scheme_of(l));
        model::linear_weight(trial, l.kind) = model::weight_to_stored(l, scale_input_columns(q, s, /*divide=*/true));
      }
      std::vector<Tensor> out;
      runner.run(trial, nullptr, std::nullopt, &out, search_seqs);
      const double err = output_mse(out, reference);
      if (i == 0) choice.error_at_0 = err;
      if (err < choice.error) {
        choice.error = err;
        choice.alpha = alpha;
        best_s = s;
      }
    }
    apply_channel_scales(config, w, site, best_s);
    SiteSample& sample = samples[site];
    for (int64_t t = 0; t < sample.n(); ++t)
      for (int64_t j = 0; j < sample.cols; ++j)
        sample.rows[static_cast<size_t>(t * sample.cols + j)] =
            static_cast<float>(sample.rows[static_cast<size_t>(t * sample.cols + j)] / best_s[static_cast<size_t>(j)]);
    result.sites.push_back(choice);
  }

  if (o.clip) {
    for (const LinearLayer& l : linears) {
      if (l.kind == model::LinearKind::Q || l.kind == model::LinearKind::K || !samples.count(l.site)) continue;
      const Tensor wo = model::weight_out_in(l, model::linear_weight(w, l.kind));
      // GPT-2's fused c_attn: only its v rows [2h, 3h) are clipped, like Llama's v_proj.
      const int64_t first = l.kind == model::LinearKind::QKV ? 2 * config.hidden_size : 0;
      result.params.emplace(l.name, clip_search(wo, scheme_of(l), samples.at(l.site), o, first, wo.rows()));
    }
  }
  return result;
}

}  // namespace qf::algo
