// Picking the next token from logits: greedy, temperature, top-k, top-p.
//
// Randomness: std::mt19937_64 seeded with SamplerConfig::seed. Its output
// sequence is fixed by the C++ standard, and the uniform draw is our own
// (the top 53 bits scaled to [0, 1)), not std::uniform_real_distribution
// (whose algorithm each standard library chooses), so a seed gives the same
// tokens with any compiler and library on any machine, given the same logits.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace qf::runtime {

struct SamplerConfig {
  float temperature = 0.0f;  // <= 0: greedy (argmax); otherwise logits / temperature
  int top_k = 0;             // keep the k most likely tokens; <= 0: all
  float top_p = 1.0f;        // keep the smallest most-likely set with mass >= top_p; >= 1: all
  uint64_t seed = 0;
};

// Index of the largest logit, the lowest index among equals. Throws qf::Error
// for empty logits or any NaN.
int32_t argmax(std::span<const float> logits);

// A uniform double in [0, 1) from the top 53 bits of one draw.
double uniform01(std::mt19937_64& rng);

class Sampler {
 public:
  // Throws qf::Error for a NaN temperature or top_p <= 0 (or NaN).
  explicit Sampler(SamplerConfig config = {});

  // One token id drawn from `logits` (one row). Greedy when temperature <= 0,
  // top_k == 1 or the top-p set holds a single token; draws no random number then.
  // Ties keep the lower token id first. Throws qf::Error for NaN logits.
  int32_t sample(std::span<const float> logits);

  const SamplerConfig& config() const { return config_; }

 private:
  SamplerConfig config_;
  std::mt19937_64 rng_;
  std::vector<std::pair<double, int32_t>> candidates_;  // (probability, id)
};

}  // namespace qf::runtime
