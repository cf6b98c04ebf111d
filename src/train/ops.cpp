#include "train/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "runtime/fp32_ops.h"

namespace qf::train {
namespace k = runtime::fp32;
namespace {

blasint bd(int64_t v) {
  QF_CHECK(v >= 0 && v <= std::numeric_limits<blasint>::max(), "matrix dimension {} exceeds the BLAS index range", v);
  return static_cast<blasint>(v);
}

}  // namespace

void linear_forward(const float* x, int64_t m, int64_t kk, const float* w, int64_t n, float* y, bool accumulate) {
  k::linear(x, m, kk, w, n, y, n, accumulate);
}

void linear_backward(const float* x, int64_t m, int64_t kk, const float* w, int64_t n, const float* dy, float* dx,
                     bool accumulate_dx, float* dw, bool accumulate_dw) {
  if (m == 0 || n == 0 || kk == 0) return;
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bd(m), bd(kk), bd(n), 1.0f, dy, bd(n), w, bd(kk),
                accumulate_dx ? 1.0f : 0.0f, dx, bd(kk));
  if (dw)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, bd(n), bd(kk), bd(m), 1.0f, dy, bd(n), x, bd(kk),
                accumulate_dw ? 1.0f : 0.0f, dw, bd(kk));
}

void rms_norm_forward(const float* x, const float* g, float eps, int64_t rows, int64_t n, float* y,
                      const ParallelFor& pf) {
  pf(rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) k::rms_norm(x + r * n, g, eps, n, y + r * n);
  });
}

void rms_norm_backward(const float* x, const float* g, float eps, int64_t rows, int64_t n, const float* dy, float* dx,
                       bool accumulate, const ParallelFor& pf) {
  // y_i = x_i s g_i with s = (mean x^2 + eps)^-1/2:
  // dx_i = s g_i dy_i - x_i s^3 / n * sum_j g_j dy_j x_j.
  pf(rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = x + r * n;
      const float* dr = dy + r * n;
      float* out = dx + r * n;
      double ss = 0, dot = 0;
      for (int64_t i = 0; i < n; ++i) {
        ss += static_cast<double>(xr[i]) * xr[i];
        dot += static_cast<double>(g[i]) * dr[i] * xr[i];
      }
      const double s = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
      const double c = dot * s * s * s / static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) {
        const float v = static_cast<float>(s * g[i] * dr[i] - xr[i] * c);
        out[i] = accumulate ? out[i] + v : v;
      }
    }
  });
}

void layer_norm_forward(const float* x, const float* g, const float* b, float eps, int64_t rows, int64_t n, float* y,
                        const ParallelFor& pf) {
  pf(rows, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) k::layer_norm(x + r * n, g, b, eps, n, y + r * n);
  });
}

void layer_norm_backward(const float* x, const float* g, float eps, int64_t rows, int64_t n, const float* dy,
                         float* dx, bool accumulate, const ParallelFor& pf) {
  // xhat = (x - mu) s; dxhat = dy g; dx = s (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).
  pf(rows, [&](int64_t lo, int64_t hi) {
    std::vector<double> xhat(static_cast<size_t>(n));
    for (int64_t r = lo; r < hi; ++r) {
      const float* xr = x + r * n;
      const float* dr = dy + r * n;
      float* out = dx + r * n;
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += xr[i];
      const double mean = sum / static_cast<double>(n);
      double var = 0;
      for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      const double s = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
      double m1 = 0, m2 = 0;
      for (int64_t i = 0; i < n; ++i) {
        xhat[static_cast<size_t>(i)] = (xr[i] - mean) * s;
        const double dh = static_cast<double>(dr[i]) * g[i];
        m1 += dh;
        m2 += dh * xhat[static_cast<size_t>(i)];
      }
      m1 /= static_cast<double>(n);
      m2 /= static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) {
        const double dh = static_cast<double>(dr[i]) * g[i];
        const float v = static_cast<float>(s * (dh - m1 - xhat[static_cast<size_t>(i)] * m2));
        out[i] = accumulate ? out[i] + v : v;
      }
    }
  });
}

void rope_forward(float* x, int64_t rows, int64_t T, int64_t stride, int64_t heads, int64_t head_dim,
                  const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = r % T;
    for (int64_t h = 0; h < heads; ++h) k::rope_half(x + r * stride + h * head_dim, head_dim, cos + t * half, sin + t * half);
  }
}

void rope_backward(float* dx, int64_t rows, int64_t T, int64_t stride, int64_t heads, int64_t head_dim,
                   const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = r % T;
    for (int64_t h = 0; h < heads; ++h) {
      float* x = dx + r * stride + h * head_dim;
      const float* c = cos + t * half;
      const float* s = sin + t * half;
      for (int64_t i = 0; i < half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a * c[i] + b * s[i];
        x[i + half] = b * c[i] - a * s[i];
      }
    }
  }
}

void attention_forward(const AttentionShape& s, const float* q, const float* kk, const float* v, float* probs,
                       float* out, const ParallelFor& pf) {
  const int64_t T = s.T, hd = s.head_dim, group = s.n_heads / s.n_kv_heads, od = s.n_heads * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One item per (sequence, query head): disjoint outputs, no shared sums.
  pf(s.B * s.n_heads, [&](int64_t b0, int64_t b1) {
    for (int64_t item = b0; item < b1; ++item) {
      const int64_t b = item / s.n_heads, h = item % s.n_heads;
      const int64_t kv_off = (h / group) * hd;
      float* P = probs + item * T * T;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t lo = s.window > 0 ? std::max<int64_t>(0, t - s.window + 1) : 0;
        const float* qh = q + (b * T + t) * s.q_stride + h * hd;
        float* row = P + t * T;
        std::fill(row, row + T, 0.0f);
        for (int64_t j = lo; j <= t; ++j) row[j] = k::dot(qh, kk + (b * T + j) * s.kv_stride + kv_off, hd) * scale;
        k::softmax(row + lo, t + 1 - lo);
        float* oh = out + (b * T + t) * od + h * hd;
        std::fill(oh, oh + hd, 0.0f);
        for (int64_t j = lo; j <= t; ++j) {
          const float w = row[j];
          const float* vs = v + (b * T + j) * s.kv_stride + kv_off;
          for (int64_t d = 0; d < hd; ++d) oh[d] += w * vs[d];
        }
      }
    }
  });
}

void attention_backward(const AttentionShape& s, const float* q, const float* kk, const float* v, const float* probs,
                        const float* dout, float* dq, float* dk, float* dv, const ParallelFor& pf) {
  const int64_t T = s.T, hd = s.head_dim, group = s.n_heads / s.n_kv_heads, od = s.n_heads * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One item per (sequence, kv head): the query heads sharing it add into its
  // dk/dv one after another, in head order.
  pf(s.B * s.n_kv_heads, [&](int64_t b0, int64_t b1) {
    std::vector<float> dP(static_cast<size_t>(T));
    for (int64_t item = b0; item < b1; ++item) {
      const int64_t b = item / s.n_kv_heads, g = item % s.n_kv_heads;
      const int64_t kv_off = g * hd;
      for (int64_t t = 0; t < T; ++t) {
        std::fill_n(dk + (b * T + t) * s.kv_stride + kv_off, hd, 0.0f);
        std::fill_n(dv + (b * T + t) * s.kv_stride + kv_off, hd, 0.0f);
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const float* P = probs + (b * s.n_heads + h) * T * T;
        for (int64_t t = 0; t < T; ++t) {
          const int64_t lo = s.window > 0 ? std::max<int64_t>(0, t - s.window + 1) : 0;
          const float* row = P + t * T;
          const float* doh = dout + (b * T + t) * od + h * hd;
          const float* qh = q + (b * T + t) * s.q_stride + h * hd;
          float* dqh = dq + (b * T + t) * s.q_stride + h * hd;
          double acc = 0;
          for (int64_t j = lo; j <= t; ++j) {
            const float* vs = v + (b * T + j) * s.kv_stride + kv_off;
            float* dvs = dv + (b * T + j) * s.kv_stride + kv_off;
            const float p = row[j];
            dP[static_cast<size_t>(j)] = k::dot(doh, vs, hd);
            acc += static_cast<double>(p) * dP[static_cast<size_t>(j)];
            for (int64_t d = 0; d < hd; ++d) dvs[d] += p * doh[d];
          }
          std::fill_n(dqh, hd, 0.0f);
          for (int64_t j = lo; j <= t; ++j) {
            const float dS = row[j] * (dP[static_cast<size_t>(j)] - static_cast<float>(acc)) * scale;
            const float* ks = kk + (b * T + j) * s.kv_stride + kv_off;
            float* dks = dk + (b * T + j) * s.kv_stride + kv_off;
            for (int64_t d = 0; d < hd; ++d) {
              dqh[d] += dS * ks[d];
              dks[d] += dS * qh[d];
            }
          }
        }
      }
    }
  });
}

void swiglu_forward(const float* g, const float* u, int64_t n, float* h) {
  std::memcpy(h, g, static_cast<size_t>(n) * sizeof(float));
  k::silu_mul(h, u, n);
}

void swiglu_backward(const float* g, const float* u, const float* dh, int64_t n, float* dg, float* du) {
  for (int64_t i = 0; i < n; ++i) {
    const float sig = 1.0f / (1.0f + k::exp_approx(-g[i]));
    const float silu = g[i] * sig;
    du[i] = dh[i] * silu;
    dg[i] = dh[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
  }
}

void gelu_forward(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = k::gelu_tanh(x[i]);
}

void gelu_backward(const float* x, const float* dy, int64_t n, float* dx) {
  constexpr float c = 0.7978845608028654f, a = 0.044715f;
  for (int64_t i = 0; i < n; ++i) {
    const float xi = x[i];
    const float th = std::tanh(c * (xi + a * xi * xi * xi));
    const float d = 0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * c * (1.0f + 3.0f * a * xi * xi);
    dx[i] = dy[i] * d;
  }
}

void log_softmax_rows(float* x, int64_t rows, int64_t vocab, const ParallelFor& pf) {
  pf(rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* row = x + r * vocab;
      const float mx = *std::max_element(row, row + vocab);
      double sum = 0;
      for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
      const float lse = static_cast<float>(mx + std::log(sum));
      for (int64_t i = 0; i < vocab; ++i) row[i] -= lse;
    }
  });
}

double kl_loss(const float* teacher_logp, const float* logits, int64_t rows, int64_t vocab, float* dlogits,
               const ParallelFor& pf) {
  std::vector<double> per_row(static_cast<size_t>(rows));
  const double inv_rows = 1.0 / static_cast<double>(rows);
  pf(rows, [&](int64_t b, int64_t e) {
    std::vector<double> es(static_cast<size_t>(vocab));
    for (int64_t r = b; r < e; ++r) {
      const float* z = logits + r * vocab;
      const float* lt = teacher_logp + r * vocab;
      const float mx = *std::max_element(z, z + vocab);
      double sum = 0;
      for (int64_t i = 0; i < vocab; ++i) {
        es[static_cast<size_t>(i)] = std::exp(static_cast<double>(z[i]) - mx);
        sum += es[static_cast<size_t>(i)];
      }
      const double lse = mx + std::log(sum), inv_sum = 1.0 / sum;
      double kl = 0;
      float* d = dlogits ? dlogits + r * vocab : nullptr;
      // Two exponentials per entry: the student's (above) and the teacher's.
      for (int64_t i = 0; i < vocab; ++i) {
        const double pt = std::exp(static_cast<double>(lt[i]));
        kl += pt * (lt[i] - (z[i] - lse));
        if (d) d[i] = static_cast<float>((es[static_cast<size_t>(i)] * inv_sum - pt) * inv_rows);
      }
      per_row[static_cast<size_t>(r)] = kl;
    }
  });
  double total = 0;
  for (double v : per_row) total += v;
  return total * inv_rows;
}

double mse_loss(const float* y, const float* target, int64_t n, float* dy) {
  double total = 0;
  const double inv = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(y[i]) - target[i];
    total += d * d;
    if (dy) dy[i] = static_cast<float>(2.0 * d * inv);
  }
  return total * inv;
}

}  // namespace qf::train
