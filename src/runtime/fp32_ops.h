// fp32 building blocks of the forward pass. Matrix products go through
// OpenBLAS (cblas_sgemm); the rest are plain loops over one row.
#pragma once

#include <cstdint>

namespace qf::runtime::fp32 {

// C[m, n] = X[m, k] * W^T (+ C when accumulate), W row-major [n, k]: an
// nn.Linear weight [out, in]. Rows of X are k floats apart, rows of C ldc.
void linear(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* c, int64_t ldc, bool accumulate);

// C[m, n] = X[m, k] * W (+ C when accumulate), W row-major [k, n]: a GPT-2
// Conv1D weight [in, out]. Rows of X are k floats apart, rows of C ldc.
void conv1d(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* c, int64_t ldc, bool accumulate);

// Sets the thread count of OpenBLAS (process-wide).
void set_blas_threads(int n);

// out = x / sqrt(mean(x^2) + eps) * w   (n floats; out may alias x)
void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out);
// out = x / sqrt(mean(x^2) + eps) * (1 + w)   (Gemma's RMSNorm: weights are offsets from 1)
void rms_norm_plus_one(const float* x, const float* w, float eps, int64_t n, float* out);
// out = (x - mean) / sqrt(var + eps) * w + b   (biased variance; out may alias x)
void layer_norm(const float* x, const float* w, const float* b, float eps, int64_t n, float* out);

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GPT-2's "gelu_new".
float gelu_tanh(float x);
// x * sigmoid(x)
float silu(float x);
// gate[i] = silu(gate[i]) * up[i] for n floats (SwiGLU), with exp_approx:
// a loop the compiler turns into SIMD, where libm's expf is a call per element
// (it was 1.5% of a decode step).
void silu_mul(float* gate, const float* up, int64_t n);
// gate[i] = gelu_tanh(gate[i]) * up[i] for n floats (GeGLU).
void gelu_mul(float* gate, const float* up, int64_t n);
// x[i] = cap * tanh(x[i] / cap) for n floats (soft-capping; cap > 0).
void softcap(float* x, int64_t n, float cap);
// e^x within 2 ulp of expf for x in [ln FLT_MIN, 127.5 ln 2] = [-87.34, 88.38];
// outside, the value at the nearer end (about FLT_MIN, or 2.4e38: silu's x / (1 + e^-x)
// is then x or -0 to float precision either way); NaN stays NaN. Cody-Waite
// reduction to [-ln2/2, ln2/2], Cephes' degree-6 polynomial, 2^n by exponent bits.
float exp_approx(float x);

// Sum of a[i] * b[i] in eight interleaved partial sums (so the compiler can
// use SIMD without -ffast-math), added up at the end.
float dot(const float* a, const float* b, int64_t n);

// In-place softmax over n floats (max-subtracted; n >= 1).
void softmax(float* x, int64_t n);

// Rotates one head of `head_dim` floats in rotate_half layout: for
// i < head_dim/2 the pair (x[i], x[i + head_dim/2]) is rotated by the angle
// whose cosine and sine are cos[i], sin[i].
void rope_half(float* x, int64_t head_dim, const float* cos, const float* sin);

}  // namespace qf::runtime::fp32
