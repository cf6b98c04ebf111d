// The reference every SIMD target is tested against: one output at a time,
// codes unpacked with PackedMatrix::unpack_row, the formulas of matmul.h spelled out.
#include <vector>

#include "kernels/matmul_targets.h"

namespace qf::kernels::detail {
namespace {

// Row n's codes as the kernels multiply them: unsigned for 2/3/4 bits, signed
// (c - 128) for 8 bits, whose stored zero point is then 0.
void kernel_codes(const PackedMatrix& w, int64_t n, std::vector<uint8_t>& unsigned_codes, std::vector<int32_t>& out) {
  w.unpack_row(n, unsigned_codes);
  const int32_t offset = w.bits() == 8 ? 128 : 0;
  for (size_t k = 0; k < out.size(); ++k) out[k] = static_cast<int32_t>(unsigned_codes[k]) - offset;
}

void store(const MatmulArgs& a, int64_t m, int64_t n, float v) {
  float& y = a.y[m * a.ldy + n];
  y = a.accumulate ? y + v : v;
}

}  // namespace

// y = sum_g s_g * (sum_k c*x - z_g * sum_k x) over each group's columns.
void matmul_f32_scalar(const MatmulArgs& a) {
  const PackedMatrix& w = *a.w;
  const Activations& x = *a.x;
  const int64_t cols = w.cols(), gs = w.group_size();
  std::vector<uint8_t> unsigned_codes(static_cast<size_t>(cols));
  std::vector<int32_t> c(static_cast<size_t>(cols));
  std::vector<float> scales(static_cast<size_t>(w.groups()));
  for (int64_t n = a.n_begin; n < a.n_end; ++n) {
    kernel_codes(w, n, unsigned_codes, c);
    w.group_scales(n, scales);  // float or two-level parameters alike
    const float* s = scales.data();
    const uint8_t* z = w.row_zeros(n);
    for (int64_t m = 0; m < x.rows; ++m) {
      const float* xm = x.f32_row(m);
      float y = 0.0f;
      for (int64_t g = 0; g < w.groups(); ++g) {
        float dot = 0.0f, sum_x = 0.0f;
        for (int64_t k = g * gs; k < cols && k < (g + 1) * gs; ++k) {
          dot += static_cast<float>(c[k]) * xm[k];
          sum_x += xm[k];
        }
        y += s[g] * (dot - static_cast<float>(z[g]) * sum_x);
      }
      store(a, m, n, y);
    }
  }
}

// I_g = sum_k c*q - z_g * sum_k q exactly in int32; y = scale_x * sum_g s_g * I_g.
void matmul_int8_scalar(const MatmulArgs& a) {
  const PackedMatrix& w = *a.w;
  const Activations& x = *a.x;
  const int64_t cols = w.cols(), gs = w.group_size();
  std::vector<uint8_t> unsigned_codes(static_cast<size_t>(cols));
  std::vector<int32_t> c(static_cast<size_t>(cols));
  std::vector<float> scales(static_cast<size_t>(w.groups()));
  for (int64_t n = a.n_begin; n < a.n_end; ++n) {
    kernel_codes(w, n, unsigned_codes, c);
    w.group_scales(n, scales);  // float or two-level parameters alike
    const float* s = scales.data();
    const uint8_t* z = w.row_zeros(n);
    for (int64_t m = 0; m < x.rows; ++m) {
      const int8_t* q = x.q_row(m);
      float acc = 0.0f;
      for (int64_t g = 0; g < w.groups(); ++g) {
        int32_t dot = 0, sum_q = 0;
        for (int64_t k = g * gs; k < cols && k < (g + 1) * gs; ++k) {
          dot += c[k] * q[k];
          sum_q += q[k];
        }
        acc += s[g] * static_cast<float>(dot - static_cast<int32_t>(z[g]) * sum_q);
      }
      store(a, m, n, x.scale[m] * acc);
    }
  }
}

}  // namespace qf::kernels::detail
