// Per-token comparison of a quantized model with the fp32 model on one token
// sequence: the divergence of each next-token distribution and the top
// candidates of both, what the report colors the text by and shows on hover.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "model/model.h"

namespace qf::report {

// F32 logits [T, vocab] of `tokens` at positions 0..T-1 (a fresh runtime, all
// positions at once). Throws qf::Error for more tokens than the model's context.
Tensor forward_logits(const model::Model& model, std::span<const int32_t> tokens, int n_threads);

struct TopK {
  std::vector<int32_t> ids;  // most probable first (ties: lower id first)
  std::vector<float> probs;  // softmax probabilities of those ids
};

// The k most probable tokens of every row of F32 logits [rows, vocab].
std::vector<TopK> top_k(const Tensor& logits, int k);

// KL(P_base || P_model) per row, nats (eval::kl_divergence_sum of each row,
// the per-token divergence `qforge eval --baseline` averages).
std::vector<float> kld_per_row(const Tensor& base_logits, const Tensor& model_logits);

// -log p(tokens[t + 1]) of row t, for t in [0, T - 1): the rows that predict a
// token of the sequence.
std::vector<float> nll_per_row(const Tensor& logits, std::span<const int32_t> tokens);

}  // namespace qf::report
