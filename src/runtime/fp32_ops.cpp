#include "runtime/fp32_ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

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
