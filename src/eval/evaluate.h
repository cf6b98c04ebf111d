// Scores a model on protocol windows: perplexity, and against a baseline
// model on the same tokens the divergence measures llama.cpp's
// `--kl-divergence` reports. Streams: logits live one batch at a time.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "eval/protocol.h"
#include "runtime/runtime.h"

namespace qf::eval {

struct EvalResult {
  int64_t windows = 0;
  int64_t tokens = 0;      // scored predictions
  double nll_sum = 0;      // sum of -log p(target), natural log
  double seconds = 0;
  double perplexity() const;

  // Filled only with a baseline.
  bool has_baseline = false;
  double baseline_nll_sum = 0;
  std::vector<float> kl;     // KL(P_baseline || P_model) per scored token, nats
  int64_t top1_agree = 0;    // argmax of both equal
  double sum_dp2 = 0;        // sum of (p_model(target) - p_baseline(target))^2
  double baseline_perplexity() const;
  double ppl_ratio() const;  // perplexity / baseline_perplexity
  double kl_mean() const;
  double kl_quantile(double q) const;  // q in [0, 1]; nearest rank
  double kl_max() const;
  double top1_agreement() const;  // fraction in [0, 1]
  double rms_dp() const;          // RMS of the target-probability difference
};

struct EvalOptions {
  int64_t batch = 512;  // tokens per forward call (bounds the logits held at once)
};

// Sum over rows of KL(softmax(p) || softmax(q)) for F32 logits [rows, vocab]
// of the same shape (the per-token divergence evaluate() reports).
double kl_divergence_sum(const Tensor& p_logits, const Tensor& q_logits);

// Each window starts from an empty cache. `baseline` may be null. Both
// runtimes need a context of at least the longest window. Throws qf::Error
// when the vocabularies differ.
EvalResult evaluate(runtime::Runtime& model, runtime::Runtime* baseline, std::span<const Window> windows,
                    const EvalOptions& options = {});

}  // namespace qf::eval
