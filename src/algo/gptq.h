// GPTQ (Frantar et al., 2022): quantizes a linear layer's weight one input
// column at a time, spreading each column's rounding error over the columns
// not yet quantized through the inverse Hessian of the layer's inputs, so the
// layer's output on the calibration data changes as little as possible.
//
//   H = sum over calibration tokens of x x^T          ([in, in], the caller accumulates it)
//   H += damp * mean(diag H) * I                       (raised x10 until Cholesky succeeds)
//   U = chol(H^-1) upper,  for columns j in blocks of block_size:
//       q_j = quant(w_j);  err = (w_j - q_j) / U_jj;  w_k -= err * U_jk  (k > j)
// with lazy batch updates of the columns after each block. Group-wise scales
// are chosen from the partly updated weights when the sweep reaches a
// group's first column (blocks are cut so that no group starts inside a
// block and runs past its end: its parameters see every earlier column's
// error, exactly as an unblocked sweep would). With act_order, columns run
// in order of decreasing diag(H) (ties in column order); static_groups then
// fixes every group's parameters from the original weights beforehand, so
// the result stays a plain group-wise layout in the original column order
// (no g_idx needed). Channel and Tensor parameters always come from the
// original weights.
// Dead inputs (H_jj == 0) get H_jj = 1 and a zero weight column, as the paper's
// reference code does, before any parameters are chosen; the column
// dequantizes to 0 in every format that has a 0 (all but binary).
// H is factored in double precision (LAPACK); the sweep works in float.
// Results are reproducible run to run and across BLAS thread counts.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "quant/quantize.h"
#include "quant/scheme.h"

namespace qf::algo {

struct GptqOptions {
  double damp = 0.01;        // fraction of mean(diag H) added to the diagonal
  int64_t block_size = 128;  // lazy batch width
  bool act_order = false;
  bool static_groups = true;  // only meaningful with act_order (and required by it here)
};

struct GptqResult {
  quant::QuantizedTensor weight;  // [out, in], the scheme given
  double damp_used = 0.0;         // the damping fraction that made Cholesky succeed
  // sum over rows of sum_j err_j^2 (the paper's per-layer loss, in units of the
  // damped Hessian): a diagnostic, smaller is better.
  double loss = 0.0;
};

// weights: F32 [out, in] (nn.Linear orientation). hessian: row-major [in, in]
// symmetric, sum of x x^T (any positive scale factor; only its shape matters).
// Works with every scheme quant::quantize supports (integers sym/asym, any
// granularity, codebooks). Throws qf::Error for shape mismatches, NaN/Inf in
// either input, or when Cholesky still fails after raising the damping.
GptqResult gptq_quantize(const Tensor& weights, std::span<const double> hessian, const quant::Scheme& scheme,
                         const GptqOptions& options = {});

}  // namespace qf::algo
