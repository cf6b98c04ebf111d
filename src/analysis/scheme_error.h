// What a quantization scheme would cost a checkpoint: per tensor, the error
// of round-to-nearest quantization and the bytes it would take; per scheme,
// the totals a user compares schemes by.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/tensor.h"
#include "quant/metrics.h"
#include "quant/scheme.h"

namespace qf::analysis {

// Matrices (2-D and up) are quantized; vectors (norm weights, biases) stay as
// stored, as llama.cpp and AutoGPTQ do, because they are tiny and sensitive.
bool is_quantizable(const Tensor& t);

struct TensorQuantError {
  bool quantized = false;     // false: kept as stored, no error
  int64_t numel = 0;
  uint64_t original_bytes = 0;
  uint64_t quantized_bytes = 0;  // codes + scales + zero points (original bytes if not quantized)
  double signal_power = 0;       // sum of x^2, for aggregating SQNR over tensors
  double noise_power = 0;        // sum of (x - x')^2
  quant::ErrorMetrics metrics{};
};

TensorQuantError evaluate_scheme(const Tensor& tensor, const quant::Scheme& scheme);

struct SchemeSummary {
  int64_t params = 0;
  uint64_t original_bytes = 0;
  uint64_t quantized_bytes = 0;
  double bits_per_weight = 0;  // over all parameters, kept tensors included
  double sqnr_db = 0;          // total signal / total noise over quantized tensors
  double mse = 0;              // mean squared error over quantized values
  double worst_sqnr_db = 0;    // the most damaged tensor
};

SchemeSummary summarize(std::span<const TensorQuantError> tensors);

}  // namespace qf::analysis
