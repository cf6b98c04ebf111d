// Matrix products of prepared activations with packed integer weights:
//   y[m, n] (+)= sum_k x[m, k] * w[n, k]     m in [0, x.rows), n in [n_begin, n_end)
// rows of y are ldy floats apart. One call computes a range of output rows on
// the calling thread; callers split [0, w.rows()) across threads themselves
// (chunks of 16 rows or more keep every target at full speed).
//
// Two precisions of the activation side:
//   F32   weights dequantized on the fly and multiplied with float
//         activations (W4A32 etc.): the same numbers as a float matmul with the
//         dequantized matrix, up to the order of float additions.
//   Int8  activations quantized per token (Activations::quantized must be
//         set); per group g of row n the kernel forms the exact int32 dot
//         I_g = sum_k c[n,k] * q[m,k] - zero_g * sum_k q[m,k], then
//         y = scale_x[m] * sum_g scale_g * I_g (W8A8, W4A8, W3A8, W2A8).
// A matrix with mins (PackedMatrix::has_mins) then has sum_g min_g * X_g
// subtracted, X_g the sum of group g's activations: of x for F32, and
// scale_x[m] * (the exact int32 sum of q) for Int8, so the result is the
// dequantized matrix times exactly the activations the dots used.
// Every Target computes the integer dots exactly as the scalar reference does
// and the float sum within rounding (1e-5 relative); M = 1 (decode) and M > 1
// (prefill, register-blocked over several activation rows) are both handled
// here, so callers never choose between GEMV and GEMM.
#pragma once

#include <cstdint>

#include "kernels/activations.h"
#include "kernels/cpu_target.h"
#include "kernels/packed_matrix.h"

namespace qf::kernels {

enum class ActivationPrecision { F32, Int8 };

// Throws qf::Error when shapes disagree (x.cols != w.cols()), the range is
// outside [0, w.rows()], Int8 is asked for unquantized activations, `target`
// is not supported on this CPU, or (more than one row) ldy < n_end. y holds
// output n of row m at y[m * ldy + n]; outputs outside [n_begin, n_end) are
// never touched.
void matmul(Target target, const PackedMatrix& w, const Activations& x, ActivationPrecision precision, float* y,
            int64_t ldy, int64_t n_begin, int64_t n_end, bool accumulate);

}  // namespace qf::kernels
