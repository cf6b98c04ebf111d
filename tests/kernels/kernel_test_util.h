// Random packed matrices and activations for the kernel tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/activations.h"
#include "kernels/packed_matrix.h"

namespace qf::kernels::test {

// A packed matrix with the codes and parameters it was built from.
struct TestMatrix {
  PackedMatrix packed;
  std::vector<std::vector<uint8_t>> codes;  // unsigned, [rows][cols]
  std::vector<std::vector<float>> scales;   // [rows][groups]
  std::vector<std::vector<uint8_t>> zeros;  // [rows][groups], as given to set_row
};

// Scales are powers of two in [1/2, 2] when `pow2_scales` (products then stay
// exact), else uniform in [1e-3, 0.1]; zero points are random (128 for 8 bits).
inline TestMatrix random_matrix(std::mt19937& rng, int bits, int64_t rows, int64_t cols, int64_t group_size,
                                bool pow2_scales) {
  TestMatrix t{PackedMatrix(bits, rows, cols, group_size), {}, {}, {}};
  const int64_t groups = t.packed.groups();
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1), exponent(-1, 1);
  std::uniform_real_distribution<float> scale(1e-3f, 0.1f);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<uint8_t> c(static_cast<size_t>(cols)), z(static_cast<size_t>(groups));
    std::vector<float> s(static_cast<size_t>(groups));
    for (auto& v : c) v = static_cast<uint8_t>(code(rng));
    for (auto& v : z) v = static_cast<uint8_t>(bits == 8 ? 128 : code(rng));
    for (auto& v : s) v = pow2_scales ? std::ldexp(1.0f, exponent(rng)) : scale(rng);
    t.packed.set_row(r, c, s, z);
    t.codes.push_back(std::move(c));
    t.scales.push_back(std::move(s));
    t.zeros.push_back(std::move(z));
  }
  return t;
}

// Normal activations, or (`integer`) integers in [-8, 8] with one +-127 per
// row, so that the int8 scale is exactly 1 and every partial sum is exact.
inline std::vector<float> random_activations(std::mt19937& rng, int64_t rows, int64_t cols, bool integer) {
  std::vector<float> x(static_cast<size_t>(rows * cols));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-8, 8), column(0, static_cast<int>(cols) - 1), sign(0, 1);
  for (int64_t m = 0; m < rows; ++m) {
    float* xm = x.data() + m * cols;
    for (int64_t k = 0; k < cols; ++k) xm[k] = integer ? static_cast<float>(small(rng)) : normal(rng);
    if (integer) xm[column(rng)] = sign(rng) ? 127.0f : -127.0f;
  }
  return x;
}

}  // namespace qf::kernels::test
