#include "eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/progress.h"

namespace qf::eval {

double EvalResult::perplexity() const { return tokens ? std::exp(nll_sum / static_cast<double>(tokens)) : 0.0; }
double EvalResult::baseline_perplexity() const {
  return tokens ? std::exp(baseline_nll_sum / static_cast<double>(tokens)) : 0.0;
}
double EvalResult::ppl_ratio() const { return perplexity() / baseline_perplexity(); }
double EvalResult::kl_mean() const {
  double s = 0;
  for (float v : kl) s += v;
  return kl.empty() ? 0.0 : s / static_cast<double>(kl.size());
}
double EvalResult::kl_quantile(double q) const {
  if (kl.empty()) return 0.0;
  std::vector<float> sorted = kl;
  const auto k = static_cast<size_t>(std::clamp(std::ceil(q * static_cast<double>(sorted.size())) - 1.0, 0.0,
                                                static_cast<double>(sorted.size() - 1)));
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k), sorted.end());
  return sorted[k];
}
double EvalResult::kl_max() const { return kl.empty() ? 0.0 : *std::max_element(kl.begin(), kl.end()); }
double EvalResult::top1_agreement() const {
  return tokens ? static_cast<double>(top1_agree) / static_cast<double>(tokens) : 0.0;
}
double EvalResult::rms_dp() const { return tokens ? std::sqrt(sum_dp2 / static_cast<double>(tokens)) : 0.0; }

namespace {

// log(sum(exp(x))) and argmax of one row, in double for stability.
struct RowSummary {
  double log_sum_exp;
  int32_t argmax;
};

RowSummary summarize_row(const float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  int32_t arg = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] > mx) {
      mx = x[i];
      arg = static_cast<int32_t>(i);
    }
  }
  QF_CHECK(std::isfinite(mx), "logits are not finite (max {})", mx);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - mx);
  return {mx + std::log(s), arg};
}

// KL(P || Q) with P, Q given as logits and their log-sum-exps.
double kl_divergence(const float* p_logits, double p_lse, const float* q_logits, double q_lse, int64_t n) {
  double kl = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double lp = p_logits[i] - p_lse;
    const double lq = q_logits[i] - q_lse;
    kl += std::exp(lp) * (lp - lq);
  }
  return std::max(0.0, kl);  // rounding can make a zero divergence slightly negative
}

}  // namespace

double kl_divergence_sum(const Tensor& p, const Tensor& q) {
  QF_CHECK(p.dtype() == DType::F32 && q.dtype() == DType::F32 && p.ndim() == 2 && p.shape() == q.shape(),
           "KL divergence needs two F32 logit matrices of one shape, got {} and {}", shape_to_string(p.shape()),
           shape_to_string(q.shape()));
  const int64_t n = p.dim(1);
  double sum = 0.0;
  for (int64_t r = 0; r < p.dim(0); ++r) {
    const float* pr = p.data<float>() + r * n;
    const float* qr = q.data<float>() + r * n;
    sum += kl_divergence(pr, summarize_row(pr, n).log_sum_exp, qr, summarize_row(qr, n).log_sum_exp, n);
  }
  return sum;
}

EvalResult evaluate(runtime::Runtime& model, runtime::Runtime* baseline, std::span<const Window> windows,
                    const EvalOptions& options) {
  const int64_t vocab = model.model().config.vocab_size;
  if (baseline) {
    QF_CHECK(baseline->model().config.vocab_size == vocab,
             "the baseline has a vocabulary of {} tokens, the model {}: they cannot be compared",
             baseline->model().config.vocab_size, vocab);
  }
  QF_CHECK(options.batch >= 1, "batch must be positive");
  const auto start = std::chrono::steady_clock::now();
  EvalResult r;
  r.has_baseline = baseline != nullptr;
  ProgressBar progress("eval", static_cast<int64_t>(windows.size()));
  for (const Window& w : windows) {
    const int64_t T = static_cast<int64_t>(w.tokens.size());
    model.reset();
    if (baseline) baseline->reset();
    for (int64_t b0 = 0; b0 < T - 1; b0 += options.batch) {
      const int64_t b1 = std::min(T, b0 + options.batch);
      // Rows b0..b1-1 predict targets b0+1..b1; only rows >= first_scored and < T-1 count.
      const std::span<const int32_t> batch(w.tokens.data() + b0, static_cast<size_t>(b1 - b0));
      const Tensor logits = model.forward(batch);
      Tensor base_logits;
      if (baseline) base_logits = baseline->forward(batch);
      for (int64_t j = std::max(b0, w.first_scored); j < std::min(b1, T - 1); ++j) {
        const float* row = logits.data<float>() + (j - b0) * vocab;
        const int32_t target = w.tokens[static_cast<size_t>(j + 1)];
        const RowSummary m = summarize_row(row, vocab);
        r.nll_sum += m.log_sum_exp - row[target];
        ++r.tokens;
        if (!baseline) continue;
        const float* brow = base_logits.data<float>() + (j - b0) * vocab;
        const RowSummary b = summarize_row(brow, vocab);
        r.baseline_nll_sum += b.log_sum_exp - brow[target];
        r.kl.push_back(static_cast<float>(kl_divergence(brow, b.log_sum_exp, row, m.log_sum_exp, vocab)));
        if (m.argmax == b.argmax) ++r.top1_agree;
        const double dp = std::exp(row[target] - m.log_sum_exp) - std::exp(brow[target] - b.log_sum_exp);
        r.sum_dp2 += dp * dp;
      }
    }
    ++r.windows;
    progress.advance();
  }
  progress.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace qf::eval
