#include "algo/gptq.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "core/error.h"
#include "quant/row_codec.h"

namespace qf::algo {
namespace {

// The damping is raised x10 at most this many times: beyond 10^4 x the
// requested fraction the Hessian hardly shapes the result any more, and a
// matrix that still fails is not a Hessian (an indefinite input, say).
constexpr int kMaxDampRaises = 4;

blasint blas_dim(int64_t v) {
  QF_CHECK(v >= 0 && v <= std::numeric_limits<blasint>::max(), "matrix dimension {} exceeds the BLAS index range",
           v);
  return static_cast<blasint>(v);
}

size_t at(int64_t row, int64_t col, int64_t ld) { return static_cast<size_t>(row * ld + col); }

void check_finite_weights(const Tensor& weights) {
  const float* w = weights.data<float>();
  const int64_t cols = weights.cols(), n = weights.numel();
  for (int64_t i = 0; i < n; ++i) {
    if (std::isfinite(w[i])) continue;
    fail("GPTQ weights have {} at row {}, column {}", std::isnan(w[i]) ? "NaN" : "an infinite value", i / cols,
         i % cols);
  }
}

void check_hessian(std::span<const double> h, int64_t n) {
  for (size_t i = 0; i < h.size(); ++i) {
    if (std::isfinite(h[i])) continue;
    const int64_t k = static_cast<int64_t>(i);
    fail("GPTQ Hessian has {} at [{}, {}]", std::isnan(h[i]) ? "NaN" : "an infinite value", k / n, k % n);
  }
  for (int64_t j = 0; j < n; ++j) {
    const double d = h[at(j, j, n)];
    QF_CHECK(d >= 0.0, "GPTQ Hessian diagonal entry [{}, {}] is negative ({}); a sum of x x^T cannot be", j, j, d);
  }
}

void check_inputs(const Tensor& weights, std::span<const double> hessian, const quant::Scheme& scheme,
                  const GptqOptions& options) {
  scheme.validate();
  QF_CHECK(weights.dtype() == DType::F32 && weights.ndim() == 2, "GPTQ needs F32 [out, in] weights, got {} {}",
           dtype_name(weights.dtype()), shape_to_string(weights.shape()));
  const int64_t in = weights.cols();
  QF_CHECK(weights.rows() > 0 && in > 0, "GPTQ needs a non-empty weight, got shape {}",
           shape_to_string(weights.shape()));
  QF_CHECK(static_cast<int64_t>(hessian.size()) == in * in,
           "GPTQ Hessian has {} entries, expected {} x {} = {} for weights of shape {}", hessian.size(), in, in,
           in * in, shape_to_string(weights.shape()));
  QF_CHECK(std::isfinite(options.damp) && options.damp > 0.0, "GPTQ damping must be a positive number, got {}",
           options.damp);
  QF_CHECK(options.block_size > 0, "GPTQ block size must be positive, got {}", options.block_size);
  // Dynamic groups under act_order would give each group the columns of a
  // permuted range, which a plain group-wise layout cannot describe (g_idx).
  QF_CHECK(!options.act_order || options.static_groups,
           "GPTQ act_order supports only static groups (static_groups = true): dynamic groups would need a g_idx "
           "the group-wise layout cannot store");
  check_finite_weights(weights);
  check_hessian(hessian, in);
}

// Columns in the order the sweep visits them: act_order takes the inputs with
// the largest diag(H) first, while the most freedom is left to absorb their
// error; ties keep their original order so the result is reproducible.
std::vector<int64_t> column_order(const std::vector<double>& h, int64_t n, bool act_order) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (act_order) {
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return h[at(a, a, n)] > h[at(b, b, n)]; });
  }
  return order;
}

// The upper Cholesky factor U of (H + lambda I)^-1 (U^T U = H^-1), or empty
// when H + lambda I is not positive definite. With J the reversal
// permutation, J H J = L L^T gives H = (J L J)(J L J)^T with J L J upper
// triangular, so H^-1 = U^T U for U = (J L J)^-1 = J L^-1 J: one Cholesky
// and one triangular inverse instead of factor, invert, factor again.
// LAPACK sees the row-major lower triangle as a column-major upper one (the
// same symmetric matrix), which spares LAPACKE's row-major transposed copies.
// The sweep reads U in float, as the paper's code does.
std::vector<float> inverse_cholesky_upper(const std::vector<double>& h, const std::vector<int64_t>& order,
                                          double lambda) {
  const int64_t n = static_cast<int64_t>(order.size());
  std::vector<double> r(h.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t oi = order[static_cast<size_t>(n - 1 - i)];
    for (int64_t j = 0; j <= i; ++j) r[at(i, j, n)] = h[at(oi, order[static_cast<size_t>(n - 1 - j)], n)];
    r[at(i, i, n)] += lambda;
  }
  const auto ln = static_cast<lapack_int>(n);
  if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', ln, r.data(), ln) != 0) return {};
  if (LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', ln, r.data(), ln) != 0) return {};
  std::vector<float> u(h.size(), 0.0f);
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) {
      const float v = static_cast<float>(r[at(n - 1 - i, n - 1 - j, n)]);
      finite &= std::isfinite(v);
      u[at(i, j, n)] = v;
    }
  }
  return finite ? u : std::vector<float>{};
}

struct Factor {
  std::vector<float> u;  // [in, in] upper, in sweep order
  double damp = 0.0;
};

Factor damped_factor(const std::vector<double>& h, const std::vector<int64_t>& order, double damp) {
  const int64_t n = static_cast<int64_t>(order.size());
  double mean_diag = 0.0;
  for (int64_t j = 0; j < n; ++j) mean_diag += h[at(j, j, n)];
  mean_diag /= static_cast<double>(n);
  double d = damp;
  for (int attempt = 0; attempt <= kMaxDampRaises; ++attempt, d *= 10.0) {
    std::vector<float> u = inverse_cholesky_upper(h, order, d * mean_diag);
    if (!u.empty()) return {std::move(u), d};
  }
  fail("GPTQ: Cholesky of the damped Hessian [{}, {}] failed even with damping {} (10^{} x {}); the Hessian is not "
       "positive semi-definite",
       n, n, d / 10.0, kMaxDampRaises, damp);
}

// The column-by-column sweep over W^T in sweep order (row k holds input
// column order[k] for every output), so a column is one contiguous span.
class Sweep {
 public:
  Sweep(const Tensor& w, const std::vector<int64_t>& order, std::vector<float> u, const quant::Scheme& scheme,
        quant::ParamGrid grid, bool dynamic_groups, int64_t block_size)
      : rows_(w.rows()),
        cols_(w.cols()),
        order_(order),
        u_(std::move(u)),
        scheme_(scheme),
        grid_(std::move(grid)),
        dynamic_(dynamic_groups),
        block_(block_size),
        group_size_(scheme.values_per_scale(w.cols())),
        wt_(static_cast<size_t>(rows_ * cols_)),
        qt_(wt_.size()),
        err_(static_cast<size_t>(std::min(block_size, cols_) * rows_)) {
    const float* src = w.data<float>();
    for_tiles([&](int64_t k, int64_t r, int64_t c) { wt_[at(k, r, rows_)] = src[at(r, c, cols_)]; });
  }

  void run() {
    for (int64_t begin = 0; begin < cols_;) {
      const int64_t end = block_end(begin);
      for (int64_t k = begin; k < end; ++k) quantize_column(k, begin, end);
      lazy_update(begin, end);
      begin = end;
    }
  }

  // The on-grid weights [out, in] in the original column order.
  Tensor quantized() const {
    Tensor q = Tensor::zeros(DType::F32, {rows_, cols_});
    float* dst = q.mutable_data<float>();
    for_tiles([&](int64_t k, int64_t r, int64_t c) { dst[at(r, c, cols_)] = qt_[at(k, r, rows_)]; });
    return q;
  }
  const quant::ParamGrid& grid() const { return grid_; }
  double loss() const { return loss_; }

 private:
  // Visits (sweep column k, row r, original column order[k]) tile by tile:
  // moving between [out, in] and the transposed sweep layout column by column
  // would touch a new cache line (and page) for every element.
  template <typename Fn>
  void for_tiles(Fn&& fn) const {
    constexpr int64_t kTile = 32;
    for (int64_t r0 = 0; r0 < rows_; r0 += kTile) {
      const int64_t r1 = std::min(r0 + kTile, rows_);
      for (int64_t k0 = 0; k0 < cols_; k0 += kTile) {
        const int64_t k1 = std::min(k0 + kTile, cols_);
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t c = order_[static_cast<size_t>(k)];
          for (int64_t r = r0; r < r1; ++r) fn(k, r, c);
        }
      }
    }
  }

  // Block ends at most block_size columns on; with dynamic groups a block
  // also ends where a group would start inside it and run past its end, so
  // every group's parameters see all the error of the columns before it.
  int64_t block_end(int64_t begin) const {
    int64_t end = std::min(begin + block_, cols_);
    if (!dynamic_) return end;
    const int64_t last_start = (end - 1) / group_size_ * group_size_;
    if (last_start > begin && std::min(last_start + group_size_, cols_) > end) end = last_start;
    return end;
  }

  // Parameters for the group starting at sweep column k (the order is the
  // identity with dynamic groups) from the current, error-updated weights.
  void choose_group(int64_t k) {
    const int64_t g = k / group_size_;
    const int64_t len = std::min(group_size_, cols_ - k);
    std::vector<float> values(static_cast<size_t>(len));
    for (int64_t r = 0; r < rows_; ++r) {
      for (int64_t i = 0; i < len; ++i) values[static_cast<size_t>(i)] = wt_[at(k + i, r, rows_)];
      grid_.params[at(r, g, grid_.groups)] = quant::choose_group_params(values, scheme_);
    }
  }

  void quantize_column(int64_t k, int64_t begin, int64_t end) {
    const int64_t c = order_[static_cast<size_t>(k)];
    const bool grouped = scheme_.granularity == quant::Granularity::Group;
    if (dynamic_ && c % group_size_ == 0) choose_group(k);
    const int64_t g = grouped ? c / group_size_ : 0;
    const float d = u_[at(k, k, cols_)];
    float* w = &wt_[at(k, 0, rows_)];
    float* q = &qt_[at(k, 0, rows_)];
    float* e = &err_[at(k - begin, 0, rows_)];
    double loss = 0.0;
    for (int64_t r = 0; r < rows_; ++r) {
      const int64_t pr = grid_.rows == 1 ? 0 : r;
      const float x = w[r];
      q[r] = quant::fake_quantize_value(x, grid_.params[at(pr, g, grid_.groups)], scheme_);
      e[r] = (x - q[r]) / d;
      loss += static_cast<double>(e[r]) * e[r];
    }
    loss_ += loss;
    // The rest of the block absorbs this column's error right away: the lazy
    // update cannot, since later columns of the block are quantized from it.
    for (int64_t j = k + 1; j < end; ++j) {
      const float ukj = u_[at(k, j, cols_)];
      float* wj = &wt_[at(j, 0, rows_)];
      for (int64_t r = 0; r < rows_; ++r) wj[r] -= e[r] * ukj;
    }
  }

  // W^T[end:, :] -= U[begin:end, end:]^T Err, one GEMM for the whole block.
  void lazy_update(int64_t begin, int64_t end) {
    if (end == cols_) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blas_dim(cols_ - end), blas_dim(rows_),
                blas_dim(end - begin), -1.0f, &u_[at(begin, end, cols_)], blas_dim(cols_), err_.data(),
                blas_dim(rows_), 1.0f, &wt_[at(end, 0, rows_)], blas_dim(rows_));
  }

  int64_t rows_, cols_;
  const std::vector<int64_t>& order_;
  std::vector<float> u_;
  const quant::Scheme& scheme_;
  quant::ParamGrid grid_;
  bool dynamic_;
  int64_t block_, group_size_;
  std::vector<float> wt_, qt_, err_;
  double loss_ = 0.0;
};

// Parameters fixed before the sweep (Tensor, Channel, static groups) come
// from the original weights; dynamic groups start as placeholders.
quant::ParamGrid initial_params(const Tensor& w, const quant::Scheme& scheme, bool dynamic_groups) {
  if (!dynamic_groups) return quant::choose_params(w, scheme);
  quant::ParamGrid grid;
  grid.rows = w.rows();
  grid.groups = scheme.groups_per_row(w.cols());
  grid.params.resize(static_cast<size_t>(grid.rows * grid.groups));
  return grid;
}

}  // namespace

GptqResult gptq_quantize(const Tensor& weights, std::span<const double> hessian, const quant::Scheme& scheme,
                         const GptqOptions& options) {
  check_inputs(weights, hessian, scheme, options);
  const int64_t n = weights.cols();
  std::vector<double> h(hessian.begin(), hessian.end());
  // An input that never fired carries no information: its weight column is
  // dropped and a unit diagonal keeps H invertible.
  Tensor w = weights.clone();
  float* wd = w.mutable_data<float>();
  for (int64_t j = 0; j < n; ++j) {
    if (h[at(j, j, n)] != 0.0) continue;
    h[at(j, j, n)] = 1.0;
    for (int64_t r = 0; r < w.rows(); ++r) wd[at(r, j, n)] = 0.0f;
  }
  const bool dynamic_groups = scheme.granularity == quant::Granularity::Group && !options.act_order;
  quant::ParamGrid grid = initial_params(w, scheme, dynamic_groups);
  const std::vector<int64_t> order = column_order(h, n, options.act_order);
  Factor factor = damped_factor(h, order, options.damp);
  h = {};  // the factor is all the sweep needs; free the [in, in] doubles

  Sweep sweep(w, order, std::move(factor.u), scheme, std::move(grid), dynamic_groups, options.block_size);
  sweep.run();
  GptqResult result;
  result.weight = quant::quantize(sweep.quantized(), scheme, sweep.grid());
  result.damp_used = factor.damp;
  result.loss = sweep.loss();
  return result;
}

}  // namespace qf::algo
