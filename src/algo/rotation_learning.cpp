#include "algo/rotation_learning.h"

#include <cblas.h>

#include <array>
#include <chrono>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "algo/block_runner.h"
#include "core/error.h"
#include "model/linear_layers.h"
#include "quant/hadamard.h"
#include "runtime/activation_quant.h"

namespace qf::algo {

using model::InputSite;
using model::LinearKind;

namespace {

// Row-major C[M, N] = alpha op(A) op(B) + beta C.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, const float* B, float beta,
          float* C) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), alpha, A, static_cast<int>(ta ? M : K), B,
              static_cast<int>(tb ? K : N), beta, C, static_cast<int>(N));
}

// One learned orthogonal matrix (x -> x M) and its gradient.
struct Param {
  int64_t n = 0;
  std::vector<float> m, grad;
  explicit Param(int64_t size) : n(size), m(static_cast<size_t>(size * size), 0.0f), grad(m.size(), 0.0f) {
    for (int64_t i = 0; i < n; ++i) m[static_cast<size_t>(i * n + i)] = 1.0f;
  }
};

// Captured float inputs of one site: rows x cols.
struct SiteInputs {
  int64_t rows = 0, cols = 0;
  std::vector<float> x;
};

// One linear layer of the objective: its input rows X, weight W [out, in],
// the energy of its float outputs Y = X W^T and where its rotations come from.
struct Term {
  const SiteInputs* in = nullptr;
  std::vector<float> w;
  int64_t out = 0;
  double y_norm2 = 0.0;  // ||X W^T||^2: the scale of the layer's output
  double w_norm2 = 0.0;  // ||W||_F^2
  Param* input_rotation = nullptr;   // P: null = identity
  Param* output_rotation = nullptr;  // R_out: null = identity
};

std::vector<float> weight_matrix(const model::LayerWeights& L, LinearKind k, int64_t* out) {
  const Tensor w = model::linear_weight(L, k).to_f32();
  *out = w.dim(0);
  const float* d = w.data<float>();
  return {d, d + w.numel()};
}

class Objective {
 public:
  Objective(const model::Model& m, const std::vector<calib::TokenSequence>& calibration,
            const RotationLearningOptions& o)
      : o_(o) {
    const model::ModelConfig& c = m.config;
    QF_CHECK(c.arch == model::Architecture::Llama, "learned rotations: Llama family only");
    validate(o);
    if (o.residual) {
      bool folded = true;
      for (float v : m.final_norm.to_f32_vector()) folded = folded && v == 1.0f;
      for (const model::LayerWeights& L : m.layers)
        for (const Tensor* t : {&L.attn_norm, &L.ffn_norm})
          for (float v : t->to_f32_vector()) folded = folded && v == 1.0f;
      QF_CHECK(folded, "learned rotations start from a rotated model (--rotate hadamard or hadamard-offline)");
      residual_ = std::make_unique<Param>(c.hidden_size);
    }
    aq_.mode = o.act_quant ? model::ActQuantMode::DynamicToken : model::ActQuantMode::None;
    aq_.bits = o.act_bits;
    aq_.symmetric = true;

    capture(m, calibration);
    for (size_t l = 0; l < m.layers.size(); ++l) {
      const model::LayerWeights& L = m.layers[l];
      for (InputSite s : {InputSite::AttnOut, InputSite::FfnHidden}) {
        const model::InputTransform& t = L.transform[static_cast<size_t>(s)];
        auto& list = s == InputSite::AttnOut ? attn_out_ : ffn_hidden_;
        list.emplace_back(o.online && t.active() && t.size <= kMaxLearnedOnline ? std::make_unique<Param>(t.size)
                                                                                 : nullptr);
      }
      auto add = [&](InputSite s, LinearKind k, Param* p, Param* r) {
        if (!p && !r) return;  // nothing learned touches it
        Term t;
        t.in = &inputs_[l][static_cast<size_t>(s)];
        t.w = weight_matrix(L, k, &t.out);
        t.input_rotation = p;
        t.output_rotation = r;
        std::vector<float> y(static_cast<size_t>(t.in->rows * t.out));
        gemm(false, true, t.in->rows, t.out, t.in->cols, 1.0f, t.in->x.data(), t.w.data(), 0.0f, y.data());
        for (float v : y) t.y_norm2 += static_cast<double>(v) * v;
        for (float v : t.w) t.w_norm2 += static_cast<double>(v) * v;
        if (t.y_norm2 > 0.0) terms_.push_back(std::move(t));
      };
      for (LinearKind k : {LinearKind::Q, LinearKind::K, LinearKind::V}) add(InputSite::AttnIn, k, residual_.get(), nullptr);
      add(InputSite::AttnOut, LinearKind::O, attn_out_[l].get(), residual_.get());
      for (LinearKind k : {LinearKind::Gate, LinearKind::Up}) add(InputSite::FfnIn, k, residual_.get(), nullptr);
      add(InputSite::FfnHidden, LinearKind::Down, ffn_hidden_[l].get(), residual_.get());
    }
    for (auto* list : {&attn_out_, &ffn_hidden_})
      for (auto& p : *list)
        if (p) params_.push_back(p.get());
    if (residual_) params_.push_back(residual_.get());
  }

  bool empty() const { return params_.empty(); }
  const std::vector<Param*>& params() const { return params_; }

  // The objective at the current matrices, and (with grad) its (sub)gradient
  // into every Param::grad.
  double evaluate(bool grad) {
    if (grad)
      for (Param* p : params_) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
    double loss = 0.0;
    for (Term& t : terms_) loss += term(t, grad);
    return loss;
  }

  // The current matrices (orthonormalized), or with `gradients` their
  // gradients; empty where nothing is learned.
  RotationRefinement collect(bool gradients) const {
    auto matrix = [gradients](const Param* p) {
      if (!p) return std::vector<float>{};
      if (gradients) return p->grad;
      std::vector<double> d(p->m.begin(), p->m.end());
      QF_CHECK(quant::orthonormalize_rows(d.data(), p->n), "learned rotation of size {} lost its rank", p->n);
      return std::vector<float>(d.begin(), d.end());
    };
    RotationRefinement r;
    r.residual = matrix(residual_.get());
    for (const auto& p : attn_out_) r.attn_out.push_back(matrix(p.get()));
    for (const auto& p : ffn_hidden_) r.ffn_hidden.push_back(matrix(p.get()));
    return r;
  }

  // Sets the matrices that are learned from `r` (same layout as collect;
  // an empty entry keeps the identity).
  void set(const RotationRefinement& r) {
    auto put = [](Param* p, const std::vector<float>& v, const char* what) {
      if (!p || v.empty()) return;
      QF_CHECK(v.size() == p->m.size(), "rotation objective: {} matrix of {} values, expected {}", what, v.size(),
               p->m.size());
      p->m = v;
    };
    put(residual_.get(), r.residual, "residual");
    for (size_t l = 0; l < attn_out_.size(); ++l) {
      if (l < r.attn_out.size()) put(attn_out_[l].get(), r.attn_out[l], "attn_out");
      if (l < r.ffn_hidden.size()) put(ffn_hidden_[l].get(), r.ffn_hidden[l], "ffn_hidden");
    }
  }

 private:
  void capture(const model::Model& m, const std::vector<calib::TokenSequence>& calibration) {
    BlockRunner runner(m, calibration, o_.n_threads);
    const int64_t total = runner.tokens();
    const int64_t stride = std::max<int64_t>(1, (total + o_.max_tokens - 1) / o_.max_tokens);
    inputs_.resize(m.layers.size());
    for (size_t l = 0; l < m.layers.size(); ++l) {
      std::array<int64_t, model::kInputSites> seen{};
      runner.run(m.layers[l], [&](InputSite site, const float* x, int64_t rows, int64_t cols) {
        SiteInputs& s = inputs_[l][static_cast<size_t>(site)];
        int64_t& n = seen[static_cast<size_t>(site)];
        s.cols = cols;
        for (int64_t r = 0; r < rows; ++r, ++n) {
          if (n % stride != 0) continue;
          s.x.insert(s.x.end(), x + r * cols, x + (r + 1) * cols);
          ++s.rows;
        }
      });
      runner.advance(m.layers[l]);
    }
  }

  // The modelled noise of one linear layer (see the header) and its
  // gradient. Rounding noise is uniform: variance delta^2 / 12 for a step
  // delta. Activation noise e (per token, step max|a| / qmax) reaches the
  // output as e W^T, E||e W^T||^2 = delta^2 / 12 ||W||_F^2; weight noise of
  // group g in row i reaches it with the energy h_g of the inputs of that
  // group's columns, delta_ig^2 / 12 h_g. The maxima and minima pass their
  // (sub)gradient to the element where they are attained.
  double term(const Term& t, bool grad) {
    const int64_t m = t.in->rows, k = t.in->cols, o = t.out;
    const float* X = t.in->x.data();
    const Param* P = t.input_rotation;
    const Param* R = t.output_rotation;
    a_.resize(static_cast<size_t>(m * k));
    if (P) {
      gemm(false, false, m, k, k, 1.0f, X, P->m.data(), 0.0f, a_.data());
    } else {
      std::copy(X, X + m * k, a_.begin());
    }
    c_.resize(static_cast<size_t>(o * k));
    if (P) {
      gemm(false, false, o, k, k, 1.0f, t.w.data(), P->m.data(), 0.0f, c_.data());
    } else {
      c_ = t.w;
    }
    b_.resize(c_.size());
    if (R) {
      gemm(true, false, o, k, o, 1.0f, R->m.data(), c_.data(), 0.0f, b_.data());
    } else {
      b_ = c_;
    }
    const double inv = 1.0 / (12.0 * t.y_norm2);
    if (grad) {
      da_.assign(a_.size(), 0.0f);
      db_.assign(b_.size(), 0.0f);
    }
    double loss = 0.0;

    if (aq_.mode != model::ActQuantMode::None) {
      const double qmax = std::ldexp(1.0, aq_.bits - 1) - 1.0;
      const double ca = t.w_norm2 * inv / (qmax * qmax);
      for (int64_t r = 0; r < m; ++r) {
        const float* row = a_.data() + r * k;
        int64_t at = 0;
        for (int64_t j = 1; j < k; ++j)
          if (std::fabs(row[j]) > std::fabs(row[at])) at = j;
        const double mx = std::fabs(row[at]);
        loss += ca * mx * mx;
        if (grad) da_[static_cast<size_t>(r * k + at)] += static_cast<float>(ca * 2.0 * row[at]);
      }
    }

    // Input energy of every column, then of every weight group.
    const int64_t gs = o_.weights.values_per_scale(k), groups = o_.weights.groups_per_row(k);
    energy_.assign(static_cast<size_t>(k), 0.0);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < k; ++j) energy_[static_cast<size_t>(j)] += static_cast<double>(a_[r * k + j]) * a_[r * k + j];
    group_energy_.assign(static_cast<size_t>(groups), 0.0);
    for (int64_t j = 0; j < k; ++j) group_energy_[static_cast<size_t>(j / gs)] += energy_[static_cast<size_t>(j)];
    kappa_.assign(static_cast<size_t>(groups), 0.0);
    const bool sym = o_.weights.symmetric;
    const double levels = sym && !o_.weights.full_range ? std::ldexp(1.0, o_.weights.bits - 1) - 1.0
                                                          : std::ldexp(1.0, o_.weights.bits) - 1.0;
    for (int64_t i = 0; i < o; ++i) {
      const float* row = b_.data() + i * k;
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t j0 = g * gs, j1 = std::min(k, j0 + gs);
        int64_t hi = j0, lo = j0;
        for (int64_t j = j0 + 1; j < j1; ++j) {
          if (sym ? std::fabs(row[j]) > std::fabs(row[hi]) : row[j] > row[hi]) hi = j;
          if (row[j] < row[lo]) lo = j;
        }
        // delta = max|w| / levels (symmetric; full range: 2 max|w| / levels) or (max - min) / levels.
        const double span = sym ? (o_.weights.full_range ? 2.0 : 1.0) * std::fabs(row[hi]) : row[hi] - row[lo];
        const double delta = span / levels, h = group_energy_[static_cast<size_t>(g)];
        loss += delta * delta * h * inv;
        if (!grad) continue;
        kappa_[static_cast<size_t>(g)] += delta * delta * inv;
        const double d_span = 2.0 * delta * h * inv / levels;
        if (sym) {
          db_[static_cast<size_t>(i * k + hi)] +=
              static_cast<float>(d_span * (o_.weights.full_range ? 2.0 : 1.0) * (row[hi] < 0 ? -1.0 : 1.0));
        } else {
          db_[static_cast<size_t>(i * k + hi)] += static_cast<float>(d_span);
          db_[static_cast<size_t>(i * k + lo)] -= static_cast<float>(d_span);
        }
      }
    }
    if (!grad) return loss;

    // Through the group energies: d h_g / d a_rj = 2 a_rj for j in g.
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < k; ++j)
        da_[static_cast<size_t>(r * k + j)] += static_cast<float>(2.0 * kappa_[static_cast<size_t>(j / gs)] * a_[r * k + j]);
    if (P) gemm(true, false, k, k, m, 1.0f, X, da_.data(), 1.0f, t.input_rotation->grad.data());  // += X^T dA
    const float* dc = db_.data();
    if (R) {
      dc_.resize(db_.size());
      gemm(false, false, o, k, o, 1.0f, R->m.data(), db_.data(), 0.0f, dc_.data());  // dC = R dB
      dc = dc_.data();
      gemm(false, true, o, o, k, 1.0f, c_.data(), db_.data(), 1.0f, t.output_rotation->grad.data());  // += C dB^T
    }
    if (P) gemm(true, false, k, k, o, 1.0f, t.w.data(), dc, 1.0f, t.input_rotation->grad.data());  // += W^T dC
    return loss;
  }

  const RotationLearningOptions& o_;
  model::ActivationQuant aq_;
  std::vector<std::array<SiteInputs, model::kInputSites>> inputs_;
  std::unique_ptr<Param> residual_;
  std::vector<std::unique_ptr<Param>> attn_out_, ffn_hidden_;
  std::vector<Param*> params_;
  std::vector<Term> terms_;
  std::vector<float> a_, c_, b_, da_, db_, dc_;
  std::vector<double> energy_, group_energy_, kappa_;
};

// M <- Cayley(-alpha Omega) M with Omega = G M^T - M G^T (skew), by the
// fixed-point iteration Y = M - alpha/2 Omega (M + Y) of Li et al.; alpha is
// chosen so that ||alpha Omega||_F = step.
void cayley_step(Param& p, double step) {
  const int64_t n = p.n;
  std::vector<float> omega(static_cast<size_t>(n * n));
  gemm(false, true, n, n, n, 1.0f, p.grad.data(), p.m.data(), 0.0f, omega.data());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) {
      const float a = omega[static_cast<size_t>(i * n + j)], b = omega[static_cast<size_t>(j * n + i)];
      omega[static_cast<size_t>(i * n + j)] = a - b;
      omega[static_cast<size_t>(j * n + i)] = b - a;
    }
  for (int64_t i = 0; i < n; ++i) omega[static_cast<size_t>(i * n + i)] = 0.0f;
  double norm = 0.0;
  for (float v : omega) norm += static_cast<double>(v) * v;
  norm = std::sqrt(norm);
  if (!(norm > 0.0) || !std::isfinite(norm)) return;
  const float half = static_cast<float>(0.5 * step / norm);
  std::vector<float> y(p.m.size()), sum(p.m.size());
  gemm(false, false, n, n, n, -2.0f * half, omega.data(), p.m.data(), 0.0f, y.data());
  for (size_t i = 0; i < y.size(); ++i) y[i] += p.m[i];
  for (int it = 0; it < 4; ++it) {
    for (size_t i = 0; i < y.size(); ++i) sum[i] = p.m[i] + y[i];
    y = p.m;
    gemm(false, false, n, n, n, -half, omega.data(), sum.data(), 1.0f, y.data());
  }
  p.m = std::move(y);
}

}  // namespace

void validate(const RotationLearningOptions& o) {
  QF_CHECK(o.steps >= 0 && o.lr > 0.0 && o.max_tokens > 0, "learned rotations: steps {}, step length {}, tokens {}",
           o.steps, o.lr, o.max_tokens);
  QF_CHECK(o.weights.format == quant::Format::Int && o.weights.granularity != quant::Granularity::Tensor,
           "learned rotations: the objective models integer weights with a scale per row or group, not {}",
           o.weights.to_string());
  QF_CHECK(!o.act_quant || (o.act_bits >= 2 && o.act_bits <= 8), "learned rotations: int{} activations", o.act_bits);
}

RotationRefinement learn_rotation(const model::Model& model, const std::vector<calib::TokenSequence>& calibration,
                                  const RotationLearningOptions& options, RotationLearningReport* report) {
  const auto t0 = std::chrono::steady_clock::now();
  Objective obj(model, calibration, options);
  QF_CHECK(!obj.empty(), "learned rotations: nothing to learn (no residual rotation and no online transform of at "
           "most {} values)", kMaxLearnedOnline);
  std::vector<std::vector<float>> best;
  double best_loss = 0.0, first = 0.0;
  int64_t best_step = 0;
  for (int64_t step = 0; step <= options.steps; ++step) {
    const double loss = obj.evaluate(step < options.steps);
    QF_CHECK(std::isfinite(loss), "learned rotations: the objective is {} at step {}", loss, step);
    if (step == 0) first = loss;
    if (step == 0 || loss < best_loss) {
      best_loss = loss;
      best_step = step;
      best.clear();
      for (const Param* p : obj.params()) best.push_back(p->m);
    }
    if (options.log && (step % 10 == 0 || step == options.steps))
      options.log(fmt::format("rotation step {:4d}/{}  objective {:.5f}  best {:.5f}", step, options.steps, loss,
                              best_loss));
    if (step == options.steps) break;
    const double lr =
        options.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * static_cast<double>(step) / options.steps));
    for (Param* p : obj.params()) cayley_step(*p, lr);
  }
  for (size_t i = 0; i < best.size(); ++i) obj.params()[i]->m = std::move(best[i]);
  if (report) {
    report->initial_loss = first;
    report->final_loss = best_loss;
    report->steps = options.steps;
    report->best_step = best_step;
    report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return obj.collect(false);
}

double rotation_objective(const model::Model& model, const std::vector<calib::TokenSequence>& calibration,
                          const RotationLearningOptions& options, const RotationRefinement* at,
                          RotationRefinement* gradient) {
  Objective obj(model, calibration, options);
  if (at) obj.set(*at);
  const double loss = obj.evaluate(gradient != nullptr);
  if (gradient) *gradient = obj.collect(true);
  return loss;
}

}  // namespace qf::algo
