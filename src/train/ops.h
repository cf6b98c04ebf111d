// Forward and backward passes of the pieces a transformer block is made of,
// for training (quantization-aware training, train/qat.h). Row-major F32
// throughout; activations are [rows, width] blocks of B sequences x T tokens.
// Forward functions reproduce runtime/fp32_ops.h (the same loops, so logits
// match the runtime to float rounding); each backward takes the gradient of
// the output and returns the gradient of the inputs, recomputing what it
// needs from the saved forward inputs instead of keeping extra state.
//
// Gradients of weights are computed with one sgemm over all rows, so a
// reduction's order is fixed by the shapes alone (deterministic for a seed,
// whatever the thread count of our pool; OpenBLAS splits output blocks, not
// the sum).
#pragma once

#include <cstdint>
#include <functional>

namespace qf::train {

// fn(begin, end) over [0, n) in contiguous chunks on a pool (or inline).
using ParallelFor = std::function<void(int64_t n, const std::function<void(int64_t, int64_t)>& fn)>;

// y[m, n] = x[m, k] W^T (+ y when accumulate), W [n, k].
void linear_forward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, bool accumulate);
// dx[m, k] (+)= dy[m, n] W; dW[n, k] (+)= dy^T x. Either output may be null.
void linear_backward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* dy, float* dx,
                     bool accumulate_dx, float* dw, bool accumulate_dw);

// RMSNorm over rows: y = x / sqrt(mean(x^2) + eps) * g.
void rms_norm_forward(const float* x, const float* g, float eps, int64_t rows, int64_t n, float* y,
                      const ParallelFor& pf);
// dx (+)= d/dx given dy (g frozen).
void rms_norm_backward(const float* x, const float* g, float eps, int64_t rows, int64_t n, const float* dy, float* dx,
                       bool accumulate, const ParallelFor& pf);
// LayerNorm over rows: y = (x - mean) / sqrt(var + eps) * g + b.
void layer_norm_forward(const float* x, const float* g, const float* b, float eps, int64_t rows, int64_t n, float* y,
                        const ParallelFor& pf);
void layer_norm_backward(const float* x, const float* g, float eps, int64_t rows, int64_t n, const float* dy,
                         float* dx, bool accumulate, const ParallelFor& pf);

// RoPE in rotate_half layout on `heads` heads of head_dim per row of width
// `stride`, row r at position r % T. cos/sin: [T, head_dim / 2]. backward
// rotates by the negative angle (the transpose of a rotation).
void rope_forward(float* x, int64_t rows, int64_t T, int64_t stride, int64_t heads, int64_t head_dim,
                  const float* cos, const float* sin);
void rope_backward(float* dx, int64_t rows, int64_t T, int64_t stride, int64_t heads, int64_t head_dim,
                   const float* cos, const float* sin);

// Causal attention of B sequences of T tokens with n_heads query heads sharing
// n_kv_heads key/value heads (grouped-query), scores scaled by 1/sqrt(hd),
// optional sliding window (0 = none). q/k/v rows have strides q_stride /
// kv_stride (fused GPT-2 qkv: 3H). out [B*T, n_heads*hd]. probs [B, n_heads,
// T, T] keeps the softmax for backward.
struct AttentionShape {
  int64_t B = 0, T = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, window = 0;
  int64_t q_stride = 0, kv_stride = 0;
};
void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* probs,
                       float* out, const ParallelFor& pf);
// dq, dk, dv (strides as for q, k, v) are overwritten.
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* probs,
                        const float* dout, float* dq, float* dk, float* dv, const ParallelFor& pf);

// SwiGLU: h = silu(g) * u; backward gives dg and du.
void swiglu_forward(const float* g, const float* u, int64_t n, float* h);
void swiglu_backward(const float* g, const float* u, const float* dh, int64_t n, float* dg, float* du);
// GELU-tanh (GPT-2's gelu_new), elementwise.
void gelu_forward(const float* x, int64_t n, float* y);
void gelu_backward(const float* x, const float* dy, int64_t n, float* dx);

// KL(teacher || student) averaged over `rows` positions, from the teacher's
// log-probabilities and the student's logits (vocab wide); writes
// d loss / d logits into dlogits when not null. Sums in double, per row and
// then in row order.
double kl_loss(const float* teacher_logp, const float* logits, int64_t rows, int64_t vocab, float* dlogits,
               const ParallelFor& pf);
// Row-wise log-softmax (in place).
void log_softmax_rows(float* x, int64_t rows, int64_t vocab, const ParallelFor& pf);

// Mean squared error over n values, gradient into dy when not null.
double mse_loss(const float* y, const float* target, int64_t n, float* dy);

}  // namespace qf::train
