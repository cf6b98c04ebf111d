#include "algo/block_runner.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qf::algo {

namespace {
runtime::RuntimeOptions runner_options(const std::vector<calib::TokenSequence>& seqs, int n_threads) {
  QF_CHECK(!seqs.empty(), "calibration needs at least one sequence");
  runtime::RuntimeOptions o;
  o.n_threads = n_threads;
  o.context = static_cast<int64_t>(seqs.front().size());
  return o;
}
}  // namespace

BlockRunner::BlockRunner(const model::Model& model, const std::vector<calib::TokenSequence>& sequences,
                         int n_threads)
    : rt_(model, runner_options(sequences, n_threads)) {
  hidden_.reserve(sequences.size());
  for (const auto& s : sequences) {
    QF_CHECK(s.size() == sequences.front().size(), "calibration sequences differ in length ({} and {})", s.size(),
             sequences.front().size());
    hidden_.push_back(rt_.embed(s));
  }
}

int64_t BlockRunner::tokens() const {
  int64_t n = 0;
  for (const auto& h : hidden_) n += h.dim(0);
  return n;
}

void BlockRunner::run(const model::LayerWeights& weights, const SiteHook& hook,
                      std::optional<model::InputSite> stop_after, std::vector<Tensor>* outputs,
                      int64_t max_sequences) {
  QF_CHECK(block_ < rt_.model().config.n_layers, "no block left to run");
  // The installed lambda refers to `hook`: uninstall it however run() ends.
  struct Uninstall {
    runtime::Runtime& rt;
    ~Uninstall() { rt.set_linear_input_hook(nullptr); }
  } uninstall{rt_};
  if (hook) {
    rt_.set_linear_input_hook(
        [&](int64_t, model::InputSite site, const float* x, int64_t rows, int64_t cols) { hook(site, x, rows, cols); });
  }
  if (outputs) outputs->clear();
  const size_t n = max_sequences > 0 ? std::min(hidden_.size(), static_cast<size_t>(max_sequences)) : hidden_.size();
  for (size_t i = 0; i < n; ++i) {
    Tensor x = hidden_[i].clone();
    rt_.forward_block(block_, weights, x, stop_after);
    if (outputs) outputs->push_back(std::move(x));
  }
}

void BlockRunner::advance(const model::LayerWeights& weights) {
  QF_CHECK(block_ < rt_.model().config.n_layers, "no block left to run");
  for (Tensor& h : hidden_) rt_.forward_block(block_, weights, h);
  ++block_;
}

std::vector<Tensor> BlockRunner::logits() {
  std::vector<Tensor> out;
  out.reserve(hidden_.size());
  for (const Tensor& h : hidden_) out.push_back(rt_.head(h));
  return out;
}

HessianAccumulator::HessianAccumulator(int64_t cols)
    : cols_(cols), sum_(static_cast<size_t>(cols * cols), 0.0), batch_(static_cast<size_t>(cols * cols)) {}

void HessianAccumulator::add(const float* x, int64_t rows) {
  if (rows <= 0) return;
  // Upper triangle of x^T x for this batch in float (one BLAS call), then
  // summed in double so thousands of batches do not lose precision.
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(cols_), static_cast<blasint>(rows), 1.0f,
              x, static_cast<blasint>(cols_), 0.0f, batch_.data(), static_cast<blasint>(cols_));
  for (int64_t i = 0; i < cols_; ++i) {
    const float* b = batch_.data() + i * cols_;
    double* s = sum_.data() + i * cols_;
    for (int64_t j = i; j < cols_; ++j) s[j] += static_cast<double>(b[j]);
  }
  tokens_ += rows;
  symmetric_ = false;
}

const std::vector<double>& HessianAccumulator::matrix() {
  if (!symmetric_) {
    for (int64_t i = 0; i < cols_; ++i)
      for (int64_t j = 0; j < i; ++j) sum_[static_cast<size_t>(i * cols_ + j)] = sum_[static_cast<size_t>(j * cols_ + i)];
    symmetric_ = true;
  }
  return sum_;
}

ChannelStats::ChannelStats(int64_t c)
    : cols(c), sum(static_cast<size_t>(c), 0.0), abs_sum(static_cast<size_t>(c), 0.0),
      abs_max(static_cast<size_t>(c), 0.0f) {}

void ChannelStats::add(const float* x, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const float a = std::fabs(xr[j]);
      sum[static_cast<size_t>(j)] += xr[j];
      abs_sum[static_cast<size_t>(j)] += a;
      abs_max[static_cast<size_t>(j)] = std::max(abs_max[static_cast<size_t>(j)], a);
    }
  }
  tokens += rows;
}

std::vector<double> ChannelStats::mean() const {
  std::vector<double> m(sum);
  for (double& v : m) v /= static_cast<double>(std::max<int64_t>(tokens, 1));
  return m;
}

std::vector<double> ChannelStats::abs_mean() const {
  std::vector<double> m(abs_sum);
  for (double& v : m) v /= static_cast<double>(std::max<int64_t>(tokens, 1));
  return m;
}

}  // namespace qf::algo
