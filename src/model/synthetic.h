// Random-weight models with the exact shapes of well-known checkpoints, so
// speed and memory can be measured without downloading anything. The weights
// are noise: only timings and sizes mean something.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "model/model.h"
#include "quant/scheme.h"

namespace qf::model {

// "gpt2-124m" (GPT-2 small), "llama-1b" (TinyLlama-1.1B shapes, GQA 32/4),
// "llama-7b" (Llama-2-7B shapes). Throws qf::Error listing the names otherwise.
ModelConfig synthetic_config(std::string_view name);
std::vector<std::string> synthetic_names();

struct SyntheticOptions {
  uint64_t seed = 1;
  int n_threads = 0;
  // When set, each linear layer (and untied embedding and head tables, as
  // llama.cpp quantizes token_embd and output) is RTN-quantized with
  // this scheme as soon as it is generated and packed for the integer kernels
  // (model::LayerWeights::packed), and its fp32 weights are freed before the
  // next is made: peak memory stays near the quantized model's size, so a 7B
  // model can be benchmarked without ever existing in fp32. The scheme must
  // be one the kernels run (model/packed_weights.h).
  std::optional<quant::Scheme> packed_scheme = std::nullopt;
};

// fp32 weights drawn uniformly with std 0.02 (norm weights 1, biases 0) from
// `seed`, filled on `n_threads` threads. Checks the bytes needed against the
// memory available first and fails with a clear message rather than swapping.
Model synthetic_model(std::string_view name, const SyntheticOptions& options);
inline Model synthetic_model(std::string_view name, uint64_t seed = 1, int n_threads = 0) {
  return synthetic_model(name, SyntheticOptions{seed, n_threads, std::nullopt});
}

}  // namespace qf::model
