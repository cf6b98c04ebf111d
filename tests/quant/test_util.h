// Shared helpers of the quant tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace qf::quant::testing {

// rows x cols normal weights; each row has its own spread (and, with `offset`,
// its own mean) so per-row and per-group parameters differ.
inline Tensor random_weights(int64_t rows, int64_t cols, uint32_t seed, bool offset = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> spread(0.01f, 3.0f);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float s = spread(rng);
    const float m = offset ? spread(rng) - 1.5f : 0.0f;
    for (int64_t c = 0; c < cols; ++c) v[static_cast<size_t>(r * cols + c)] = m + s * normal(rng);
  }
  return Tensor::from_f32(v, {rows, cols});
}

inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

}  // namespace qf::quant::testing
