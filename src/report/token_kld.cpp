#include "report/token_kld.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "eval/evaluate.h"
#include "runtime/runtime.h"

namespace qf::report {
namespace {

// A one-row view [1, vocab] of row r (no copy; `m` keeps the bytes alive).
Tensor row_view(const Tensor& m, int64_t r) {
  const int64_t n = m.dim(1);
  return Tensor::view(DType::F32, {1, n}, m.data<float>() + r * n, nullptr);
}

double log_sum_exp(const float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  QF_CHECK(std::isfinite(mx), "logits are not finite (max {})", mx);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - mx);
  return mx + std::log(s);
}

void check_logits(const Tensor& t) {
  QF_CHECK(t.dtype() == DType::F32 && t.ndim() == 2 && t.dim(0) > 0 && t.dim(1) > 0,
           "expected F32 logits [rows, vocab], got {} {}", dtype_name(t.dtype()), shape_to_string(t.shape()));
}

}  // namespace

Tensor forward_logits(const model::Model& model, std::span<const int32_t> tokens, int n_threads) {
  runtime::RuntimeOptions opt;
  opt.n_threads = n_threads;
  opt.context = static_cast<int64_t>(tokens.size());
  runtime::Runtime rt(model, opt);
  return rt.forward(tokens, runtime::Logits::All);
}

std::vector<TopK> top_k(const Tensor& logits, int k) {
  check_logits(logits);
  QF_CHECK(k >= 1, "top-k needs k >= 1, got {}", k);
  const int64_t n = logits.dim(1);
  const auto kk = static_cast<int64_t>(std::min<int64_t>(k, n));
  std::vector<TopK> out(static_cast<size_t>(logits.dim(0)));
  std::vector<int32_t> idx(static_cast<size_t>(n));
  for (int64_t r = 0; r < logits.dim(0); ++r) {
    const float* x = logits.data<float>() + r * n;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + kk, idx.end(),
                      [x](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    const double lse = log_sum_exp(x, n);
    TopK& t = out[static_cast<size_t>(r)];
    for (int64_t i = 0; i < kk; ++i) {
      const int32_t id = idx[static_cast<size_t>(i)];
      t.ids.push_back(id);
      t.probs.push_back(static_cast<float>(std::exp(static_cast<double>(x[id]) - lse)));
    }
  }
  return out;
}

std::vector<float> kld_per_row(const Tensor& base_logits, const Tensor& model_logits) {
  check_logits(base_logits);
  check_logits(model_logits);
  QF_CHECK(base_logits.shape() == model_logits.shape(), "logits of different shapes: {} and {}",
           shape_to_string(base_logits.shape()), shape_to_string(model_logits.shape()));
  std::vector<float> out;
  out.reserve(static_cast<size_t>(base_logits.dim(0)));
  for (int64_t r = 0; r < base_logits.dim(0); ++r)
    out.push_back(static_cast<float>(eval::kl_divergence_sum(row_view(base_logits, r), row_view(model_logits, r))));
  return out;
}

std::vector<float> nll_per_row(const Tensor& logits, std::span<const int32_t> tokens) {
  check_logits(logits);
  QF_CHECK(logits.dim(0) == static_cast<int64_t>(tokens.size()), "{} logit rows for {} tokens", logits.dim(0),
           tokens.size());
  const int64_t n = logits.dim(1);
  std::vector<float> out;
  for (size_t t = 0; t + 1 < tokens.size(); ++t) {
    const float* x = logits.data<float>() + static_cast<int64_t>(t) * n;
    const int32_t target = tokens[t + 1];
    QF_CHECK(target >= 0 && target < n, "token id {} outside the vocabulary of {}", target, n);
    out.push_back(static_cast<float>(log_sum_exp(x, n) - x[target]));
  }
  return out;
}

}  // namespace qf::report
