#include "quant/hadamard.h"

#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"

namespace qf::quant {

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

int64_t largest_pow2_factor(int64_t n) {
  QF_CHECK(n > 0, "largest power-of-two factor of {}", n);
  return n & -n;
}

void fwht(float* x, int64_t n) {
  QF_CHECK(is_power_of_two(n), "Walsh-Hadamard transform of size {}: not a power of two", n);
  for (int64_t h = 1; h < n; h *= 2) {
    for (int64_t i = 0; i < n; i += 2 * h) {
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  // One scale at the end instead of 1/sqrt(2) per stage: exact for powers of 4.
  const float s = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  if (n > 1)
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

bool orthonormalize_rows(double* a, int64_t m) {
  // Modified Gram-Schmidt twice, for orthogonality to rounding.
  const size_t n = static_cast<size_t>(m);
  for (size_t i = 0; i < n; ++i) {
    double* v = a + i * n;
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t j = 0; j < i; ++j) {
        const double* u = a + j * n;
        double d = 0.0;
        for (size_t k = 0; k < n; ++k) d += v[k] * u[k];
        for (size_t k = 0; k < n; ++k) v[k] -= d * u[k];
      }
    }
    double norm = 0.0;
    for (size_t k = 0; k < n; ++k) norm += v[k] * v[k];
    norm = std::sqrt(norm);
    if (!(norm > 1e-12)) return false;
    for (size_t k = 0; k < n; ++k) v[k] /= norm;
  }
  return true;
}

std::vector<float> random_orthogonal(int64_t m, uint64_t seed) {
  QF_CHECK(m > 0 && m <= (int64_t{1} << 14), "random orthogonal matrix of size {}", m);
  // Box-Muller over a fixed-width engine: std::normal_distribution is not
  // specified bit for bit across standard libraries, mt19937_64 is.
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
  const size_t n = static_cast<size_t>(m);
  std::vector<double> a(n * n);
  for (size_t i = 0; i < a.size(); i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform())), t = 2.0 * M_PI * uniform();
    a[i] = r * std::cos(t);
    if (i + 1 < a.size()) a[i + 1] = r * std::sin(t);
  }
  // Keeping each row's direction (a positive R diagonal) is the sign fix
  // that makes the result Haar-distributed.
  QF_CHECK(orthonormalize_rows(a.data(), m), "random orthogonal matrix of size {}: degenerate draw", m);
  return {a.begin(), a.end()};
}

void kronecker_transform(const float* x, int64_t rows, int64_t n, int64_t block, const float* mix, float* out,
                         float* tmp) {
  QF_CHECK(block > 0 && n % block == 0 && is_power_of_two(block), "transform of size {} with Hadamard block {}", n,
           block);
  const int64_t m = n / block;
  QF_CHECK(mix || m == 1, "transform of size {} with Hadamard block {} needs a [{}, {}] mixing matrix", n, block, m, m);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    float* y = mix ? tmp : o;
    if (y != xr) std::memmove(y, xr, static_cast<size_t>(n) * sizeof(float));
    for (int64_t a = 0; a < m; ++a) fwht(y + a * block, block);
    if (!mix) continue;
    // o[a', :] = sum_a R[a, a'] y[a, :]
    std::memset(o, 0, static_cast<size_t>(n) * sizeof(float));
    for (int64_t a = 0; a < m; ++a) {
      const float* ya = y + a * block;
      const float* ra = mix + a * m;
      for (int64_t a2 = 0; a2 < m; ++a2) {
        const float w = ra[a2];
        float* oa = o + a2 * block;
        for (int64_t b = 0; b < block; ++b) oa[b] += w * ya[b];
      }
    }
  }
}

}  // namespace qf::quant
