#include "kernels/matmul.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <vector>

#include "core/error.h"
#include "kernels/matmul_targets.h"

namespace qf::kernels {

namespace detail {

float* thread_scratch(int64_t n) {
  thread_local AlignedBuffer<float> buffer;
  buffer.reserve_discard(static_cast<size_t>(n));
  return buffer.data();
}

}  // namespace detail

namespace {

// A two-level row's float mins, super * sub (two_level.h), with SSE2 vectors
// for ggml's 8 and 16 groups per super-block (this file has no target flags,
// and GCC 12 leaves the uint8 loop of two_level.h scalar). The same floats.
void form_row_mins(const uint8_t* sub, const float* super, int64_t groups, int64_t per, float* out) {
  int64_t g = 0;
#if defined(__SSE2__)
  if (per == 8 || per == 16) {
    const int shift = per == 16 ? 4 : 3;
    const __m128i zero = _mm_setzero_si128();
    for (; g + 8 <= groups; g += 8) {
      const __m128i v = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sub + g)), zero);
      const __m128 d = _mm_set1_ps(super[g >> shift]);
      _mm_storeu_ps(out + g, _mm_mul_ps(d, _mm_cvtepi32_ps(_mm_unpacklo_epi16(v, zero))));
      _mm_storeu_ps(out + g + 4, _mm_mul_ps(d, _mm_cvtepi32_ps(_mm_unpackhi_epi16(v, zero))));
    }
  }
#endif
  for (; g < groups; ++g) out[g] = super[g / per] * static_cast<float>(sub[g]);
}

// y[m, n] -= sum_g min[n, g] * xsum[m, g] for every output the target wrote:
// the min term of w = s * (c - z) - min, shared by every target (it is
// rows * groups multiply-adds, 1/16 to 1/32 of the product's work for the
// groups of 16 and 32 that carry mins). The group sums are of the
// activations the product used: the float x for F32, and for Int8 the
// dequantized int8 activations, scale_x * (exact int32 sum of q), so the
// result is exactly the dequantized matrix times the same activations the
// integer dots saw (what a simulated W8A8 model computes), not a mix of
// quantized products and float sums.
void subtract_min_term(const PackedMatrix& w, const Activations& x, bool f32, float* y, int64_t ldy, int64_t n_begin,
                       int64_t n_end) {
  const int64_t groups = w.groups(), blocks = x.blocks(), per_group = w.group_size() / kSumBlock;
  thread_local std::vector<float> sums, formed;
  sums.resize(static_cast<size_t>(x.rows * groups));
  if (w.two_level()) formed.resize(static_cast<size_t>(groups));
  for (int64_t m = 0; m < x.rows; ++m) {
    // Groups are whole blocks of kSumBlock except a ragged last one, whose padding sums to 0.
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t b0 = g * per_group, b1 = g + 1 == groups ? blocks : b0 + per_group;
      float& out = sums[static_cast<size_t>(m * groups + g)];
      if (f32) {
        float s = 0.0f;
        for (int64_t b = b0; b < b1; ++b) s += x.f32_block_sums[static_cast<size_t>(m * blocks + b)];
        out = s;
      } else {
        int32_t s = 0;
        for (int64_t b = b0; b < b1; ++b) s += x.block_sums[static_cast<size_t>(m * blocks + b)];
        out = x.scale[static_cast<size_t>(m)] * static_cast<float>(s);
      }
    }
  }
  for (int64_t n = n_begin; n < n_end; ++n) {
    const float* mins = w.row_mins(n);
    if (w.two_level()) {  // the same floats: super-min * sub-min per group, formed once per row
      form_row_mins(w.row_sub_mins(n), w.row_super_mins(n), groups, w.super_groups(), formed.data());
      mins = formed.data();
    }
    for (int64_t m = 0; m < x.rows; ++m) {
      // Eight independent partial sums: the compiler vectorizes them (SSE
      // here, as this file has no target flags), where one running sum would
      // be a chain of dependent adds as long as the row's groups (64 for a
      // 2048-wide Q4_K row, which then cost about as much as its product).
      const float* gs = sums.data() + m * groups;
      float part[8] = {};
      int64_t g = 0;
      for (; g + 8 <= groups; g += 8)
        for (int i = 0; i < 8; ++i) part[i] += mins[g + i] * gs[g + i];
      float t = 0.0f;
      for (; g < groups; ++g) t += mins[g] * gs[g];
      for (float v : part) t += v;
      y[m * ldy + n] -= t;
    }
  }
}

void dispatch(Target target, const detail::MatmulArgs& args, bool f32) {
  switch (target) {
    case Target::Scalar:
      return f32 ? detail::matmul_f32_scalar(args) : detail::matmul_int8_scalar(args);
#if defined(QF_KERNELS_X86)
    case Target::Avx2:
      return f32 ? detail::matmul_f32_avx2(args) : detail::matmul_int8_avx2(args);
    case Target::AvxVnni:
      return f32 ? detail::matmul_f32_avx2(args) : detail::matmul_int8_avxvnni(args);
    case Target::Avx512Vnni:
      return f32 ? detail::matmul_f32_avx512(args) : detail::matmul_int8_avx512vnni(args);
#else
    default:
      break;
#endif
  }
  fail("matmul: no kernel for target {}", target_name(target));
}

}  // namespace

void matmul(Target target, const PackedMatrix& w, const Activations& x, ActivationPrecision precision, float* y,
            int64_t ldy, int64_t n_begin, int64_t n_end, bool accumulate) {
  QF_CHECK(w.rows() > 0, "matmul with an empty packed matrix");
  QF_CHECK(x.cols == w.cols() && x.padded_cols == w.padded_cols(),
           "matmul: activations have {} columns, the packed matrix {}", x.cols, w.cols());
  QF_CHECK(0 <= n_begin && n_begin <= n_end && n_end <= w.rows(), "matmul: output rows [{}, {}) outside [0, {})",
           n_begin, n_end, w.rows());
  QF_CHECK(precision == ActivationPrecision::F32 || x.quantized,
           "matmul: int8 precision needs activations prepared with quantize_int8");
  QF_CHECK(target_supported(target), "matmul: kernel target {} is not supported by this CPU ({})", target_name(target),
           describe_targets());
  if (x.rows == 0 || n_begin == n_end) return;
  QF_CHECK(y != nullptr, "matmul: null output");
  QF_CHECK(x.rows == 1 || ldy >= n_end, "matmul: output row stride {} is less than the output rows' end {}", ldy,
           n_end);

  const detail::MatmulArgs args{&w, &x, y, ldy, n_begin, n_end, accumulate};
  const bool f32 = precision == ActivationPrecision::F32;
  dispatch(target, args, f32);
  if (w.has_mins()) subtract_min_term(w, x, f32, y, ldy, n_begin, n_end);
}

}  // namespace qf::kernels
