// quant/hadamard.h against dense references: the fast transform equals the
// Sylvester matrix product, the Kronecker transform equals x (R (x) H), and
// both are orthogonal; the random orthogonal matrix is orthogonal and seeded.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "quant/hadamard.h"

namespace qf::quant {
namespace {

// Sylvester H_n (unnormalized) entry: (-1)^popcount(i & j).
double sylvester(int64_t i, int64_t j) { return __builtin_popcountll(static_cast<uint64_t>(i & j)) % 2 ? -1.0 : 1.0; }

std::vector<float> random_vector(int64_t n, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> d;
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

TEST(Hadamard, FwhtEqualsTheSylvesterMatrix) {
  for (int64_t n : {1, 2, 4, 8, 64, 256}) {
    const std::vector<float> x = random_vector(n, 1 + static_cast<uint64_t>(n));
    std::vector<float> y = x;
    fwht(y.data(), n);
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0.0;
      for (int64_t i = 0; i < n; ++i) ref += x[static_cast<size_t>(i)] * sylvester(i, j);
      ref /= std::sqrt(static_cast<double>(n));
      EXPECT_NEAR(y[static_cast<size_t>(j)], ref, 1e-5) << "n " << n << " j " << j;
    }
    fwht(y.data(), n);  // its own inverse
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[static_cast<size_t>(i)], x[static_cast<size_t>(i)], 1e-5);
  }
  std::vector<float> z(12);
  EXPECT_THROW(fwht(z.data(), 12), Error);
}

TEST(Hadamard, RandomOrthogonalIsOrthogonalAndSeeded) {
  for (int64_t m : {1, 3, 43, 172}) {
    const std::vector<float> r = random_orthogonal(m, 7);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < m; ++j) {
        double d = 0.0;
        for (int64_t k = 0; k < m; ++k) d += static_cast<double>(r[static_cast<size_t>(i * m + k)]) * r[static_cast<size_t>(j * m + k)];
        EXPECT_NEAR(d, i == j ? 1.0 : 0.0, 1e-5) << m;
      }
    EXPECT_EQ(r, random_orthogonal(m, 7));
    if (m > 1) {
      EXPECT_NE(r, random_orthogonal(m, 8));
    }
  }
}

TEST(Hadamard, KroneckerTransformEqualsTheDenseProduct) {
  const int64_t m = 43, block = 4, n = m * block, rows = 3;
  const std::vector<float> mix = random_orthogonal(m, 2);
  const std::vector<float> x = random_vector(rows * n, 5);
  std::vector<float> y(x.size()), tmp(static_cast<size_t>(n));
  kronecker_transform(x.data(), rows, n, block, mix.data(), y.data(), tmp.data());
  double in_norm = 0.0, out_norm = 0.0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c) {
      // Q[(a, b), (a', b')] = R[a, a'] H[b, b'] / sqrt(block)
      double ref = 0.0;
      for (int64_t i = 0; i < n; ++i)
        ref += x[static_cast<size_t>(r * n + i)] * mix[static_cast<size_t>((i / block) * m + c / block)] *
               sylvester(i % block, c % block) / std::sqrt(static_cast<double>(block));
      EXPECT_NEAR(y[static_cast<size_t>(r * n + c)], ref, 1e-4);
      out_norm += static_cast<double>(y[static_cast<size_t>(r * n + c)]) * y[static_cast<size_t>(r * n + c)];
      in_norm += static_cast<double>(x[static_cast<size_t>(r * n + c)]) * x[static_cast<size_t>(r * n + c)];
    }
  EXPECT_NEAR(out_norm / in_norm, 1.0, 1e-5);
  // In place gives the same result.
  std::vector<float> z = x;
  kronecker_transform(z.data(), rows, n, block, mix.data(), z.data(), tmp.data());
  EXPECT_EQ(z, y);
  // Pure Hadamard (no mix) needs block == n.
  EXPECT_THROW(kronecker_transform(x.data(), 1, n, block, nullptr, y.data(), tmp.data()), Error);
  EXPECT_THROW(kronecker_transform(x.data(), 1, n, 3, mix.data(), y.data(), tmp.data()), Error);
  EXPECT_EQ(largest_pow2_factor(172), 4);
  EXPECT_EQ(largest_pow2_factor(11008), 256);
  EXPECT_EQ(largest_pow2_factor(14336), 2048);
}

}  // namespace
}  // namespace qf::quant
