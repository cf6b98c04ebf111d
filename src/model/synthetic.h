// Random-weight models with the exact shapes of well-known checkpoints, so
// speed and memory can be measured without downloading anything. The weights
// are noise: only timings and sizes mean something.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "model/model.h"

namespace qf::model {

// "gpt2-124m" (GPT-2 small), "llama-1b" (TinyLlama-1.1B shapes, GQA 32/4),
// "llama-7b" (Llama-2-7B shapes). Throws qf::Error listing the names otherwise.
ModelConfig synthetic_config(std::string_view name);
std::vector<std::string> synthetic_names();

// fp32 weights drawn uniformly with std 0.02 (norm weights 1, biases 0) from
// `seed`, filled on `n_threads` threads. Checks the bytes needed against the
// memory available first and fails with a clear message rather than swapping.
Model synthetic_model(std::string_view name, uint64_t seed = 1, int n_threads = 0);

}  // namespace qf::model
