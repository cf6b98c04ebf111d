// Deterministic test data for the calibration tests. The generators are
// written out (not <random> distributions) so the values are the same with
// every standard library.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <vector>

#include "quant/affine.h"

namespace qf::calib::testing {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {  // Box-Muller
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  uint64_t state_;
};

inline std::vector<float> uniform_values(uint64_t seed, size_t n, double lo, double hi) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

inline std::vector<float> normal_values(uint64_t seed, size_t n, double sigma = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(sigma * rng.normal());
  return v;
}

// Mean squared error of fake-quantizing `values` with `p`.
inline double quantization_mse(std::span<const float> values, const quant::AffineParams& p) {
  double sum = 0.0;
  for (float x : values) {
    const double d = static_cast<double>(x) - quant::affine_dequantize(quant::affine_quantize(x, p), p);
    sum += d * d;
  }
  return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

// A per-tensor integer target scheme for observers.
inline quant::Scheme int_scheme(int bits, bool symmetric) {
  quant::Scheme s;
  s.format = quant::Format::Int;
  s.bits = bits;
  s.symmetric = symmetric;
  s.granularity = quant::Granularity::Tensor;
  return s;
}

}  // namespace qf::calib::testing
