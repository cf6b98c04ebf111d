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
  std::vector<std::vector<float>> mins;     // [rows][groups] with mins, else empty rows
};

// Scales are powers of two in [1/2, 2] when `pow2_scales` (products then stay
// exact), else uniform in [1e-3, 0.1]; zero points are random (128 for 8 bits).
// `with_mins` adds group mins (integers in [-4, 4] with pow2 scales, else
// uniform in [-0.05, 0.05]) and makes about one scale in eight 0 and one in
// eight negative, as ggml's blocks have them (a zero scale leaves w = -min).
inline TestMatrix random_matrix(std::mt19937& rng, int bits, int64_t rows, int64_t cols, int64_t group_size,
                                bool pow2_scales, bool with_mins = false) {
  TestMatrix t{PackedMatrix(bits, rows, cols, group_size, with_mins), {}, {}, {}, {}};
  const int64_t groups = t.packed.groups();
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1), exponent(-1, 1), small(-4, 4), eighth(0, 7);
  std::uniform_real_distribution<float> scale(1e-3f, 0.1f), min(-0.05f, 0.05f);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<uint8_t> c(static_cast<size_t>(cols)), z(static_cast<size_t>(groups));
    std::vector<float> s(static_cast<size_t>(groups)), mn;
    for (auto& v : c) v = static_cast<uint8_t>(code(rng));
    for (auto& v : z) v = static_cast<uint8_t>(bits == 8 ? 128 : code(rng));
    for (auto& v : s) {
      v = pow2_scales ? std::ldexp(1.0f, exponent(rng)) : scale(rng);
      if (with_mins) {
        const int e = eighth(rng);
        if (e == 0) v = 0.0f;
        if (e == 1) v = -v;
      }
    }
    if (with_mins) {
      mn.resize(static_cast<size_t>(groups));
      for (auto& v : mn) v = pow2_scales ? static_cast<float>(small(rng)) : min(rng);
    }
    t.packed.set_row(r, c, s, z, mn);
    t.codes.push_back(std::move(c));
    t.scales.push_back(std::move(s));
    t.zeros.push_back(std::move(z));
    t.mins.push_back(std::move(mn));
  }
  return t;
}

// A two-level matrix (PackedMatrix's header): int8 sub-scales times a float
// super-scale per `super_groups` groups, and with mins uint8 sub-mins times a
// super-min; every zero point `uniform_zero` when >= 0 (stored once), else
// random per group (128 for 8 bits). `scales` and `mins` of the result are the
// floats super * sub the kernels form, and `twin` holds the same values with
// float parameters. With `pow2_scales` super-parameters are powers of two
// and sub-parameters small integers (every product then stays exact); else
// the sub-scales span int8 (Q6_K's signed scales, zeros included) and the
// sub-mins uint8.
struct TwoLevelMatrix {
  TestMatrix t;
  PackedMatrix twin;
};

inline TwoLevelMatrix random_two_level_matrix(std::mt19937& rng, int bits, int64_t rows, int64_t cols,
                                              int64_t group_size, int64_t super_groups, bool pow2_scales,
                                              bool with_mins, int uniform_zero) {
  const GroupParams params{.mins = with_mins, .super_groups = super_groups, .uniform_zero = uniform_zero};
  TwoLevelMatrix out{{PackedMatrix(bits, rows, cols, group_size, params), {}, {}, {}, {}},
                     PackedMatrix(bits, rows, cols, group_size, with_mins)};
  TestMatrix& t = out.t;
  const int64_t groups = t.packed.groups(), supers = t.packed.supers();
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1), small(-4, 4), small_min(0, 4), any_sub(-128, 127),
      any_min(0, 255), exponent(-1, 0);
  std::uniform_real_distribution<float> super_scale(1e-4f, 1e-3f), super_min(0.0f, 2e-4f);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<uint8_t> c(static_cast<size_t>(cols)), z(static_cast<size_t>(groups)), sub_min;
    std::vector<int8_t> sub(static_cast<size_t>(groups));
    std::vector<float> sup(static_cast<size_t>(supers)), sup_min;
    for (auto& v : c) v = static_cast<uint8_t>(code(rng));
    for (auto& v : z) v = static_cast<uint8_t>(bits == 8 ? 128 : uniform_zero >= 0 ? uniform_zero : code(rng));
    for (auto& v : sub) v = static_cast<int8_t>(pow2_scales ? small(rng) : any_sub(rng));
    for (auto& v : sup) v = pow2_scales ? std::ldexp(1.0f, exponent(rng)) : super_scale(rng);
    if (with_mins) {
      sub_min.resize(static_cast<size_t>(groups));
      sup_min.resize(static_cast<size_t>(supers));
      for (auto& v : sub_min) v = static_cast<uint8_t>(pow2_scales ? small_min(rng) : any_min(rng));
      for (auto& v : sup_min) v = pow2_scales ? std::ldexp(1.0f, exponent(rng)) : super_min(rng);
    }
    t.packed.set_row(r, c, TwoLevelRow{sub, sup, sub_min, sup_min}, z);
    std::vector<float> s(static_cast<size_t>(groups)), mn(with_mins ? static_cast<size_t>(groups) : 0);
    for (int64_t g = 0; g < groups; ++g) {
      const auto b = static_cast<size_t>(g / super_groups);
      s[g] = sup[b] * static_cast<float>(sub[g]);
      if (with_mins) mn[g] = sup_min[b] * static_cast<float>(sub_min[g]);
    }
    out.twin.set_row(r, c, s, z, mn);
    t.codes.push_back(std::move(c));
    t.scales.push_back(std::move(s));
    t.zeros.push_back(std::move(z));
    t.mins.push_back(std::move(mn));
  }
  return out;
}

// |w| bound of weight k of row n for tolerances: |s| * (|c| + z) + |min|.
inline double weight_magnitude(const TestMatrix& t, int64_t n, int64_t k) {
  const int64_t g = k / t.packed.group_size();
  const int bits = t.packed.bits();
  const int zero = bits == 8 ? 0 : t.zeros[n][g];
  const int code = bits == 8 ? t.codes[n][k] - 128 : t.codes[n][k];
  return std::fabs(t.scales[n][g]) * (std::abs(code) + zero) + (t.mins[n].empty() ? 0.0 : std::fabs(t.mins[n][g]));
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
