// Orthogonal transforms for rotation-based quantization (QuaRot / SpinQuant):
// a fast Walsh-Hadamard transform and the Kronecker products R (x) H that
// cover sizes which are not powers of two.
//
// A Hadamard matrix of order n exists only for n = 1, 2 or a multiple of 4,
// and the Sylvester construction (the one with an O(n log n) transform) only
// for powers of two. Real FFN widths are 2^k * m with m odd (5632 = 11 * 512,
// 11008 = 43 * 256, 14336 = 7 * 2048; stories260K's 172 = 43 * 4), so a
// transform of size n here is Q = R (x) H_b with b the largest power of two
// dividing n and R a dense seeded random orthogonal [m, m] matrix (m = n / b):
// y = x Q costs n log2 b + n m operations instead of n^2 for a dense matrix.
#pragma once

#include <cstdint>
#include <vector>

namespace qf::quant {

bool is_power_of_two(int64_t n);
// The largest power of two dividing n (n > 0).
int64_t largest_pow2_factor(int64_t n);

// In place x <- x H_n / sqrt(n): the orthonormal Sylvester-Hadamard transform
// (H_1 = [1], H_2n = [[H, H], [H, -H]]; symmetric, its own inverse). n must be
// a power of two.
void fwht(float* x, int64_t n);

// A seeded random orthogonal [m, m] matrix, row-major: the Q factor of a
// Gaussian matrix (modified Gram-Schmidt in double, signs fixed so that the
// distribution is Haar). Same (m, seed) -> same bits on every machine.
std::vector<float> random_orthogonal(int64_t m, uint64_t seed);

// Rows of the row-major [m, m] `a` made orthonormal in place, in order
// (modified Gram-Schmidt, each row keeping its direction): the nearest
// orthogonal matrix for one that drifted by rounding. False when a row is
// (numerically) a combination of the rows before it.
bool orthonormalize_rows(double* a, int64_t m);

// out[r, :] = x[r, :] (R (x) H_block) for `rows` rows of n = m * block
// values: index a * block + b holds (a, b); H_block is the orthonormal
// Walsh-Hadamard (block a power of two) and R the row-major [m, m] `mix`
// (nullptr: m must be 1). out may alias x. `tmp` holds n floats.
void kronecker_transform(const float* x, int64_t rows, int64_t n, int64_t block, const float* mix, float* out,
                         float* tmp);

}  // namespace qf::quant
