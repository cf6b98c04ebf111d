#include "runtime/fp32_ops.h"

#include <cblas.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "quant/affine.h"

namespace qf::runtime::fp32 {
namespace {

blasint blas_dim(int64_t v) {
  QF_CHECK(v >= 0 && v <= std::numeric_limits<blasint>::max(), "matrix dimension {} exceeds the BLAS index range",
           v);
  return static_cast<blasint>(v);
}

}  // namespace

void linear(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* c, int64_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (m == 1) {  // decode: a matrix-vector product streams W once; sgemm's packing would copy it
    cblas_sgemv(CblasRowMajor, CblasNoTrans, blas_dim(n), blas_dim(k), 1.0f, w, blas_dim(k), x, 1,
                accumulate ? 1.0f : 0.0f, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_dim(m), blas_dim(n), blas_dim(k), 1.0f, x, blas_dim(k), w,
              blas_dim(k), accumulate ? 1.0f : 0.0f, c, blas_dim(ldc));
}

void conv1d(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* c, int64_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasTrans, blas_dim(k), blas_dim(n), 1.0f, w, blas_dim(n), x, 1,
                accumulate ? 1.0f : 0.0f, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_dim(m), blas_dim(n), blas_dim(k), 1.0f, x, blas_dim(k),
              w, blas_dim(n), accumulate ? 1.0f : 0.0f, c, blas_dim(ldc));
}

void set_blas_threads(int n) {
  if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
}

void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void rms_norm_plus_one(const float* x, const float* w, float eps, int64_t n, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * (1.0f + w[i]);
}

void gelu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gelu_tanh(gate[i]) * up[i];
}

void softcap(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void layer_norm(const float* x, const float* w, const float* b, float eps, int64_t n, float* out) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double var = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mean;
    var += d * d;
  }
  var /= static_cast<double>(n);
  const double inv = 1.0 / std::sqrt(var + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>((x[i] - mean) * inv) * w[i] + b[i];
}

float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

namespace {
constexpr float kExpLog2e = 1.44269504088896341f, kExpLn2Hi = 0.693359375f, kExpLn2Lo = -2.12194440e-4f;
constexpr float kExpHi = 88.3762626f, kExpLo = -87.3365448f;  // 127.5 ln 2 (so n <= 127), ln FLT_MIN
// Cephes' expf polynomial: e^r = 1 + r + r^2 * P(r) on [-ln2/2, ln2/2].
constexpr float kExpP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                            4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace

float exp_approx(float x) {
  const float v = std::min(std::max(x, kExpLo), kExpHi);  // a NaN stays NaN
  const float n = quant::round_half_even(v * kExpLog2e);
  const float r = (v - n * kExpLn2Hi) - n * kExpLn2Lo;
  float p = kExpP[0];
  for (int i = 1; i < 6; ++i) p = p * r + kExpP[i];
  const float e = (p * r * r + r) + 1.0f;
  // 2^n through the exponent field, n in [-126, 127] (std::max turns a NaN's n
  // into -126, whose product with the NaN e is NaN).
  const int32_t bits = (static_cast<int32_t>(std::max(-126.0f, n)) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return e * scale;
}

void silu_mul(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  // exp_approx four lanes at a time, the same operations in the same order
  // (GCC turns the scalar clamps into branches, which it then cannot vectorize).
  const __m128 lo = _mm_set1_ps(kExpLo), hi = _mm_set1_ps(kExpHi), one = _mm_set1_ps(1.0f);
  for (; i + 4 <= n; i += 4) {
    const __m128 g = _mm_loadu_ps(gate + i);
    const __m128 x = _mm_sub_ps(_mm_setzero_ps(), g);
    const __m128 v = _mm_min_ps(hi, _mm_max_ps(lo, x));  // operand order keeps a NaN
    const __m128i ni = _mm_cvtps_epi32(_mm_mul_ps(v, _mm_set1_ps(kExpLog2e)));  // round half even
    const __m128 nf = _mm_cvtepi32_ps(ni);
    const __m128 r = _mm_sub_ps(_mm_sub_ps(v, _mm_mul_ps(nf, _mm_set1_ps(kExpLn2Hi))),
                                _mm_mul_ps(nf, _mm_set1_ps(kExpLn2Lo)));
    __m128 p = _mm_set1_ps(kExpP[0]);
    for (int k = 1; k < 6; ++k) p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(kExpP[k]));
    const __m128 e = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_mul_ps(p, r), r), r), one);
    const __m128 scale = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(ni, _mm_set1_epi32(127)), 23));
    const __m128 sig = _mm_div_ps(g, _mm_add_ps(one, _mm_mul_ps(e, scale)));
    _mm_storeu_ps(gate + i, _mm_mul_ps(sig, _mm_loadu_ps(up + i)));
  }
#endif
  for (; i < n; ++i) gate[i] = gate[i] / (1.0f + exp_approx(-gate[i])) * up[i];
}

float dot(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 8;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

void softmax(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void rope_half(float* x, int64_t head_dim, const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos[i] - b * sin[i];
    x[i + half] = b * cos[i] + a * sin[i];
  }
}

}  // namespace qf::runtime::fp32
