#include "kernels/matmul.h"

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

}  // namespace qf::kernels
