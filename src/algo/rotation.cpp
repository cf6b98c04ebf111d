#include "algo/rotation.h"

#include <cblas.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core/error.h"
#include "model/arch/family.h"
#include "model/linear_layers.h"
#include "quant/hadamard.h"

namespace qf::algo {

using model::InputSite;
using model::LinearKind;

namespace {

// Q = D (R (x) H_block) of size n, applied to row vectors: y = x Q.
struct Orthogonal {
  int64_t n = 0, block = 1;
  std::vector<float> mix;    // [n / block]^2, empty when n == block
  std::vector<float> signs;  // n values of +-1, empty for D = I

  void apply(float* x) const {  // in place, one row of n values
    if (!signs.empty())
      for (int64_t i = 0; i < n; ++i) x[i] *= signs[static_cast<size_t>(i)];
    tmp.resize(static_cast<size_t>(n));
    quant::kronecker_transform(x, 1, n, block, mix.empty() ? nullptr : mix.data(), x, tmp.data());
  }
  mutable std::vector<float> tmp;
};

uint64_t derive_seed(uint64_t seed, uint64_t what, uint64_t layer) {
  // splitmix64 over (seed, what, layer): independent streams per use.
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (1 + what * 1000003ULL + layer);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr int64_t kMaxDense = 4096;

Orthogonal make_orthogonal(int64_t n, const RotationOptions& o, uint64_t seed, bool with_signs) {
  Orthogonal q;
  q.n = n;
  q.block = quant::largest_pow2_factor(n);
  if (o.odd_size == OddSizeRotation::Dense && q.block != n) {
    QF_CHECK(n <= kMaxDense, "--rotate-odd dense: a dense random orthogonal matrix of size {} costs {}^2 per token "
             "online and {}^3 to draw; use kronecker above {}", n, n, n, kMaxDense);
    q.block = 1;
  }
  if (q.block != n) q.mix = quant::random_orthogonal(n / q.block, derive_seed(seed, 7, 0));
  if (with_signs) {
    std::mt19937_64 rng(seed);
    q.signs.resize(static_cast<size_t>(n));
    for (float& s : q.signs) s = (rng() >> 63) ? -1.0f : 1.0f;
  }
  return q;
}

// An owning F32 copy of a (possibly mapped, possibly F16) weight.
Tensor owned(const Tensor& t) { return t.to_f32().clone(); }

// A dense Q (learned refinements) goes through BLAS: the row-by-row loop is
// n^2 scalar work per row, hours for a 4096-wide residual of a 7B model.
bool is_dense(const Orthogonal& q) { return q.block == 1 && q.n > 1 && q.signs.empty(); }

// Every row of t [rows, n * chunks]: each run of n values times Q.
void rotate_rows(Tensor& t, const Orthogonal& q) {
  t = owned(t);
  const int64_t cols = t.ndim() == 1 ? t.numel() : t.dim(1), rows = t.numel() / cols;
  QF_CHECK(cols % q.n == 0, "rotation of size {} on rows of {} values", q.n, cols);
  float* d = t.mutable_data<float>();
  if (is_dense(q)) {
    std::vector<float> out(static_cast<size_t>(rows * q.n));
    for (int64_t c = 0; c < cols; c += q.n) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(q.n),
                  static_cast<int>(q.n), 1.0f, d + c, static_cast<int>(cols), q.mix.data(), static_cast<int>(q.n), 0.0f,
                  out.data(), static_cast<int>(q.n));
      for (int64_t r = 0; r < rows; ++r) std::copy_n(out.data() + r * q.n, q.n, d + r * cols + c);
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; c += q.n) q.apply(d + r * cols + c);
}

// t [n * chunks, cols] <- blockdiag(Q)^T t: every column, run by run of n rows.
void rotate_columns(Tensor& t, const Orthogonal& q) {
  t = owned(t);
  const int64_t rows = t.dim(0), cols = t.dim(1);
  QF_CHECK(rows % q.n == 0, "rotation of size {} on columns of {} values", q.n, rows);
  float* d = t.mutable_data<float>();
  if (is_dense(q)) {  // each run of n rows <- Q^T run
    std::vector<float> out(static_cast<size_t>(q.n * cols));
    for (int64_t r0 = 0; r0 < rows; r0 += q.n) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(q.n), static_cast<int>(cols),
                  static_cast<int>(q.n), 1.0f, q.mix.data(), static_cast<int>(q.n), d + r0 * cols,
                  static_cast<int>(cols), 0.0f, out.data(), static_cast<int>(cols));
      std::copy(out.begin(), out.end(), d + r0 * cols);
    }
    return;
  }
  std::vector<float> col(static_cast<size_t>(q.n));
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r0 = 0; r0 < rows; r0 += q.n) {
      for (int64_t i = 0; i < q.n; ++i) col[static_cast<size_t>(i)] = d[(r0 + i) * cols + c];
      q.apply(col.data());
      for (int64_t i = 0; i < q.n; ++i) d[(r0 + i) * cols + c] = col[static_cast<size_t>(i)];
    }
}

// W [out, in] <- W diag(g): a norm weight folded into its readers' columns.
void scale_columns(Tensor& w, const Tensor& g) {
  w = owned(w);
  const Tensor gf = g.to_f32();
  const float* s = gf.data<float>();
  const int64_t rows = w.dim(0), cols = w.dim(1);
  float* d = w.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) d[r * cols + c] *= s[c];
}

bool all_ones(const Tensor& t) {
  for (float v : t.to_f32_vector())
    if (v != 1.0f) return false;
  return true;
}

Tensor ones(int64_t n) {
  Tensor t = Tensor::zeros(DType::F32, {n});
  float* d = t.mutable_data<float>();
  for (int64_t i = 0; i < n; ++i) d[i] = 1.0f;
  return t;
}

void check_rotatable(const model::Model& m) {
  const model::ModelConfig& c = m.config;
  const model::BlockSpec& spec = model::block_spec(c);
  QF_CHECK(spec.norm == model::NormKind::RMS,
           "--rotate: {} uses {}; rotations fold plain RMSNorm weights (x / rms(x) * w) into the next layers and "
           "are implemented for those families only",
           c.model_type,
           spec.norm == model::NormKind::Layer ? "LayerNorm, whose mean subtraction does not commute with a rotation"
                                               : "RMSNorm with (1 + w) weights");
  QF_CHECK(!spec.sandwich_norms,
           "--rotate: {} norms the attention and MLP outputs before the residual add, which a rotated residual "
           "stream cannot pass through",
           c.model_type);
  QF_CHECK(!m.embed.empty() && !m.lm_head.empty() && !m.embed_packed && !m.lm_head_packed,
           "--rotate needs the float embedding and head (load without integer kernels)");
  for (const model::LayerWeights& L : m.layers) {
    for (const auto& p : L.packed) QF_CHECK(!p, "--rotate needs float weights, not packed integer layers");
    for (const auto& a : L.act)
      QF_CHECK(a.mode == model::ActQuantMode::None, "--rotate needs a model without activation quantizers");
    for (const auto& t : L.transform) QF_CHECK(!t.active(), "--rotate: the model is already rotated");
  }
}

// Embedding, the readers of the residual and the head W Q; its writers (and
// their biases) Q^T W. The norms must already be folded.
void apply_residual(model::Model& m, const Orthogonal& q) {
  rotate_rows(m.embed, q);
  if (m.config.tie_embeddings) {
    m.lm_head = m.embed;
  } else {
    rotate_rows(m.lm_head, q);
  }
  for (model::LayerWeights& L : m.layers) {
    for (LinearKind k : {LinearKind::Q, LinearKind::K, LinearKind::V, LinearKind::Gate, LinearKind::Up})
      rotate_rows(model::linear_weight(L, k), q);
    for (LinearKind k : {LinearKind::O, LinearKind::Down}) {
      rotate_columns(model::linear_weight(L, k), q);
      if (Tensor& b = model::linear_bias(L, k); !b.empty()) rotate_rows(b, q);
    }
  }
}

void rotate_residual(model::Model& m, const RotationOptions& o) {
  const model::ModelConfig& c = m.config;
  const Orthogonal q = make_orthogonal(c.hidden_size, o, derive_seed(o.seed, 1, 0), /*with_signs=*/true);
  // The head first: it may need the unrotated embedding when the tie breaks.
  if (!all_ones(m.final_norm)) {
    if (c.tie_embeddings) {
      m.lm_head = owned(m.embed);
      m.config.tie_embeddings = false;
    }
    scale_columns(m.lm_head, m.final_norm);
    m.final_norm = ones(c.hidden_size);
  }
  for (model::LayerWeights& L : m.layers) {
    for (LinearKind k : {LinearKind::Q, LinearKind::K, LinearKind::V}) scale_columns(model::linear_weight(L, k), L.attn_norm);
    for (LinearKind k : {LinearKind::Gate, LinearKind::Up}) scale_columns(model::linear_weight(L, k), L.ffn_norm);
    L.attn_norm = ones(c.hidden_size);
    L.ffn_norm = ones(c.hidden_size);
  }
  apply_residual(m, q);
}

void rotate_heads(model::Model& m, const RotationOptions& o) {
  const model::ModelConfig& c = m.config;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    model::LayerWeights& L = m.layers[l];
    const Orthogonal q = make_orthogonal(c.head_dim, o, derive_seed(o.seed, 2, l), /*with_signs=*/true);
    rotate_columns(L.wv, q);  // Q_h^T on each head's rows
    if (!L.bv.empty()) rotate_rows(L.bv, q);
    rotate_rows(L.wo, q);  // Q_h on each head's columns
  }
}

model::InputTransform online(const Orthogonal& q) {
  model::InputTransform t;
  t.size = q.n;
  t.block = q.block;
  if (!q.mix.empty()) {
    const int64_t mm = q.n / q.block;
    t.mix = Tensor::from_f32(q.mix, {mm, mm});
  }
  return t;
}

void rotate_attn_out(model::Model& m, const RotationOptions& o) {
  const model::ModelConfig& c = m.config;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    model::LayerWeights& L = m.layers[l];
    const Orthogonal q = make_orthogonal(c.q_dim(), o, derive_seed(o.seed, 4, l), /*with_signs=*/false);
    rotate_rows(L.wo, q);
    L.transform[static_cast<size_t>(InputSite::AttnOut)] = online(q);
  }
}

void rotate_ffn_hidden(model::Model& m, const RotationOptions& o) {
  const model::ModelConfig& c = m.config;
  const int64_t ff = c.intermediate_size;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    model::LayerWeights& L = m.layers[l];
    Orthogonal q = make_orthogonal(ff, o, derive_seed(o.seed, 3, l), /*with_signs=*/true);
    // D goes into up_proj's rows (and bias): the hidden arrives as h D.
    L.w_up = owned(L.w_up);
    float* up = L.w_up.mutable_data<float>();
    for (int64_t r = 0; r < ff; ++r)
      for (int64_t j = 0; j < c.hidden_size; ++j) up[r * c.hidden_size + j] *= q.signs[static_cast<size_t>(r)];
    if (!L.b_up.empty()) {
      L.b_up = owned(L.b_up);
      for (int64_t r = 0; r < ff; ++r) L.b_up.mutable_data<float>()[r] *= q.signs[static_cast<size_t>(r)];
    }
    // down_proj reads h D T: W_down D T, each row times D then T.
    rotate_rows(L.w_down, q);
    L.transform[static_cast<size_t>(InputSite::FfnHidden)] = online(q);
  }
}

Orthogonal dense(std::vector<float> m, int64_t n) {
  QF_CHECK(static_cast<int64_t>(m.size()) == n * n, "refined rotation: a [{}, {}] matrix holds {} values, not {}", n,
           n, n * n, m.size());
  Orthogonal q;
  q.n = n;
  q.block = 1;
  q.mix = std::move(m);
  return q;
}

// The online transform of a site times M, as one dense transform.
model::InputTransform compose_online(const model::InputTransform& t, const std::vector<float>& m) {
  const int64_t n = t.size;
  std::vector<float> rows(static_cast<size_t>(n * n), 0.0f), tmp(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i * n + i)] = 1.0f;
  // Row i of T is e_i T.
  quant::kronecker_transform(rows.data(), n, n, t.block, t.mix.empty() ? nullptr : t.mix.data<float>(), rows.data(),
                             tmp.data());
  const Orthogonal q = dense(m, n);
  for (int64_t i = 0; i < n; ++i) q.apply(rows.data() + i * n);
  model::InputTransform out;
  out.size = n;
  out.block = 1;
  out.mix = Tensor::from_f32(rows, {n, n});
  return out;
}

void refine_online(model::Model& m, model::InputSite site, model::LinearKind reader,
                   const std::vector<std::vector<float>>& per_layer) {
  if (per_layer.empty()) return;
  QF_CHECK(per_layer.size() == m.layers.size(), "refined rotation: {} matrices for {} layers", per_layer.size(),
           m.layers.size());
  for (size_t l = 0; l < m.layers.size(); ++l) {
    if (per_layer[l].empty()) continue;
    model::LayerWeights& L = m.layers[l];
    model::InputTransform& t = L.transform[static_cast<size_t>(site)];
    QF_CHECK(t.active(), "refined rotation: block {} has no online transform to refine", l);
    t = compose_online(t, per_layer[l]);
    rotate_rows(model::linear_weight(L, reader), dense(per_layer[l], t.size));
  }
}

}  // namespace

void refine_rotation(model::Model& m, const RotationRefinement& r) {
  with_context(m.source.empty() ? std::string("model") : m.source, [&] {
    QF_CHECK(m.config.arch == model::Architecture::Llama, "refined rotation: Llama family only");
    if (!r.residual.empty()) {
      const model::ModelConfig& c = m.config;
      QF_CHECK(all_ones(m.final_norm), "refined rotation: the residual is not rotated (final norm not folded)");
      for (const model::LayerWeights& L : m.layers)
        QF_CHECK(all_ones(L.attn_norm) && all_ones(L.ffn_norm),
                 "refined rotation: the residual is not rotated (block norms not folded)");
      apply_residual(m, dense(r.residual, c.hidden_size));
    }
    refine_online(m, InputSite::AttnOut, LinearKind::O, r.attn_out);
    refine_online(m, InputSite::FfnHidden, LinearKind::Down, r.ffn_hidden);
  });
}

std::optional<RotationOptions> parse_rotation(std::string_view spec, uint64_t seed) {
  RotationOptions o;
  o.seed = seed;
  if (spec == "none") return std::nullopt;
  if (spec == "hadamard") return o;  // attn_out's online transform includes attn_heads
  if (spec == "hadamard-offline") {
    o.ffn_hidden = false;
    o.attn_out = false;
    o.attn_heads = true;
    return o;
  }
  fail("unknown rotation '{}' (valid: none, hadamard, hadamard-offline)", spec);
}

void rotate_model(model::Model& m, const RotationOptions& o) {
  with_context(m.source.empty() ? std::string("model") : m.source, [&] {
    check_rotatable(m);
    if (o.residual) rotate_residual(m, o);
    if (o.attn_heads) rotate_heads(m, o);
    if (o.attn_out) rotate_attn_out(m, o);
    if (o.ffn_hidden) rotate_ffn_hidden(m, o);
  });
}

nlohmann::json rotation_info(const RotationOptions& o) {
  return {{"residual", o.residual},
          {"attn_heads", o.attn_heads},
          {"attn_out_online", o.attn_out},
          {"ffn_hidden_online", o.ffn_hidden},
          {"odd_sizes", o.odd_size == OddSizeRotation::Kronecker ? "kronecker" : "dense"},
          {"seed", o.seed}};
}

}  // namespace qf::algo
