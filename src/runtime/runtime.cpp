#include "runtime/runtime.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

#include "core/error.h"
#include "model/arch/family.h"
#include "model/linear_layers.h"
#include "model/rope.h"
#include "quant/hadamard.h"
#include "runtime/activation_quant.h"
#include "runtime/fp32_ops.h"

namespace qf::runtime {

namespace k = fp32;
using model::LinearKind;

KVCache::KVCache(int64_t n_layers, int64_t capacity, int64_t kv_dim)
    : n_layers_(n_layers), capacity_(capacity), kv_dim_(kv_dim) {
  const size_t n = static_cast<size_t>(n_layers * capacity * kv_dim);
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

void KVCache::truncate(int64_t n) {
  QF_CHECK(n >= 0 && n <= size_, "cannot truncate a KV cache of {} positions to {}", size_, n);
  size_ = n;
}

void KVCache::set_size(int64_t n) {
  QF_CHECK(n >= 0 && n <= capacity_, "KV cache size {} outside [0, {}]", n, capacity_);
  size_ = n;
}

// Activation blocks, grown to the largest batch seen and reused.
struct Runtime::Scratch {
  std::vector<float> x, xn, q, att, ff1, ff2, actq, xt, xt_tmp, sub;
  std::vector<float> kbuf, vbuf;  // new keys / values of a multi-segment call, before they are scattered
  // RoPE tables [T, head_dim / 2] of the current rows: [0] the model's RoPE,
  // [1] the sliding-window layers' own (Gemma 3's local base) when it has one.
  std::vector<float> cos[2], sin[2];
  kernels::Activations kernel_input;  // the current site's input, prepared for packed layers

  static float* sized(std::vector<float>& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
  }
};

namespace {

int resolve_threads(int n) {
  return n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int64_t resolve_context(const model::ModelConfig& c, int64_t requested) {
  if (requested <= 0) return std::min(c.max_positions, kDefaultContextCap);
  if (model::block_spec(c).learned_positions)
    QF_CHECK(requested <= c.max_positions, "context {} exceeds gpt2's {} learned positions", requested,
             c.max_positions);
  return requested;
}

// Writes `bias` (or zeros when absent) into each of `rows` rows of `n` floats,
// `ld` apart, so a following GEMM can accumulate onto it. Returns whether a
// bias was written (the GEMM must then accumulate).
bool preload_bias(const Tensor& bias, int64_t rows, int64_t n, float* dst, int64_t ld) {
  if (bias.empty()) return false;
  const float* b = bias.data<float>();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * ld, b, static_cast<size_t>(n) * sizeof(float));
  return true;
}

void add_bias(const Tensor& bias, int64_t rows, int64_t n, float* dst, int64_t ld) {
  const float* b = bias.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) dst[r * ld + i] += b[i];
}

}  // namespace

Runtime::Runtime(const model::Model& model, RuntimeOptions options)
    : model_(model),
      spec_(model::block_spec(model.config)),
      n_threads_(resolve_threads(options.n_threads)),
      target_(options.kernel_target ? *options.kernel_target : kernels::default_target()),
      int8_activations_(options.int8_activations),
      scratch_(std::make_unique<Scratch>()) {
  QF_CHECK(kernels::target_supported(target_), "kernel target {} is not supported on this CPU (it has: {})",
           kernels::target_name(target_), kernels::describe_targets());
  const model::ModelConfig& c = model_.config;
  with_context(model_.source.empty() ? std::string("model") : model_.source, [&] {
    c.validate("");
    QF_CHECK(static_cast<int64_t>(model_.layers.size()) == c.n_layers, "model has {} layers, config says {}",
             model_.layers.size(), c.n_layers);
    QF_CHECK((!model_.embed.empty() || model_.embed_packed) && (!model_.lm_head.empty() || model_.lm_head_packed) &&
                 !model_.final_norm.empty(),
             "model is missing its embedding, head or final norm");
    // The kernels trust the shapes: a packed matrix must be the layer it stands for.
    auto check_packed = [](const kernels::PackedMatrix* w, int64_t rows, int64_t cols, const std::string& name) {
      QF_CHECK(!w || (w->rows() == rows && w->cols() == cols), "packed {} is [{}, {}], the config needs [{}, {}]", name,
               w ? w->rows() : 0, w ? w->cols() : 0, rows, cols);
    };
    for (const model::LinearLayer& l : model::all_linears(c))
      check_packed(model_.layers[static_cast<size_t>(l.layer)].packed_weight(l.kind), l.out_features, l.in_features,
                   l.name);
    for (size_t l = 0; l < model_.layers.size(); ++l)
      for (int site = 0; site < model::kInputSites; ++site) {
        const model::InputTransform& t = model_.layers[l].transform[static_cast<size_t>(site)];
        if (!t.active()) continue;
        const int64_t m = t.block > 0 && t.size % t.block == 0 ? t.size / t.block : 0;
        QF_CHECK(quant::is_power_of_two(t.block) && m > 0 &&
                     (m == 1 ? t.mix.empty()
                             : t.mix.dtype() == DType::F32 && t.mix.shape() == (Shape{m, m})),
                 "block {} {}: malformed input transform (size {}, Hadamard block {}, mix {})", l,
                 model::input_site_name(static_cast<model::InputSite>(site)), t.size, t.block,
                 t.mix.empty() ? std::string("none") : shape_to_string(t.mix.shape()));
      }
    check_packed(model_.embed_packed.get(), c.vocab_size, c.hidden_size, "embedding");
    check_packed(model_.lm_head_packed.get(), c.vocab_size, c.hidden_size, "lm_head");
    cache_ = KVCache(c.n_layers, resolve_context(c, options.context), c.kv_dim());
  });
  pool_ = std::make_unique<ThreadPool>(n_threads_);
}

Runtime::~Runtime() = default;

void Runtime::for_rows(int64_t rows, int64_t work_per_row, const std::function<void(int64_t, int64_t)>& fn) {
  // Below ~64K element operations a thread hand-off costs more than it saves.
  if (n_threads_ == 1 || rows < 2 || rows * work_per_row < (int64_t{1} << 16)) {
    fn(0, rows);
  } else {
    pool_->parallel_for(rows, fn);
  }
}

KVCache Runtime::new_cache() const {
  return KVCache(model_.config.n_layers, cache_.capacity(), model_.config.kv_dim());
}

void Runtime::check_cache(const KVCache& cache) const {
  // A longer cache than the runtime's context could run GPT-2 past its learned positions.
  QF_CHECK(cache.n_layers() == model_.config.n_layers && cache.kv_dim() == model_.config.kv_dim() &&
               cache.capacity() <= cache_.capacity(),
           "KV cache of {} layers x {} positions x {} is not one of this runtime's ({} x {} x {})", cache.n_layers(),
           cache.capacity(), cache.kv_dim(), model_.config.n_layers, cache_.capacity(), model_.config.kv_dim());
}

void Runtime::set_segments(std::vector<Segment> segments) {
  segs_ = std::move(segments);
  row_seg_.clear();
  row_pos_.clear();
  for (size_t i = 0; i < segs_.size(); ++i) {
    for (int64_t r = 0; r < segs_[i].rows; ++r) {
      row_seg_.push_back(i);
      row_pos_.push_back(segs_[i].p0 + r);
    }
  }
}

Tensor Runtime::forward(KVCache& cache, std::span<const int32_t> tokens, Logits which) {
  const model::ModelConfig& c = model_.config;
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t p0 = cache.size();
  QF_CHECK(T > 0, "forward() needs at least one token");
  if (&cache != &cache_) check_cache(cache);
  QF_CHECK(p0 + T <= cache.capacity(), "{} new tokens after {} do not fit the context of {} positions", T, p0,
           cache.capacity());
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = tokens[static_cast<size_t>(t)];
    QF_CHECK(id >= 0 && id < c.vocab_size, "token id {} at batch index {} is outside the vocabulary [0, {})", id, t,
             c.vocab_size);
  }
  k::set_blas_threads(n_threads_);
  const int64_t out_rows = which == Logits::All ? T : 1;
  Tensor logits = Tensor::zeros(DType::F32, {out_rows, c.vocab_size});
  set_segments({Segment{&cache, p0, T}});
  run_blocks(tokens, out_rows, logits.mutable_data<float>());
  cache.set_size(p0 + T);
  return logits;
}

Tensor Runtime::forward_batch(std::span<const int32_t> tokens, std::span<KVCache* const> caches) {
  const model::ModelConfig& c = model_.config;
  const int64_t K = static_cast<int64_t>(tokens.size());
  QF_CHECK(K > 0, "forward_batch() needs at least one sequence");
  QF_CHECK(caches.size() == tokens.size(), "forward_batch() got {} tokens for {} caches", tokens.size(),
           caches.size());
  std::vector<Segment> segments;
  for (int64_t i = 0; i < K; ++i) {
    KVCache* cache = caches[static_cast<size_t>(i)];
    QF_CHECK(cache != nullptr, "forward_batch() cache {} is null", i);
    for (int64_t j = 0; j < i; ++j)
      QF_CHECK(caches[static_cast<size_t>(j)] != cache, "forward_batch() lists one cache twice (at {} and {})", j, i);
    if (cache != &cache_) check_cache(*cache);
    QF_CHECK(cache->size() < cache->capacity(), "sequence {} of the batch has filled its context of {} positions", i,
             cache->capacity());
    const int32_t id = tokens[static_cast<size_t>(i)];
    QF_CHECK(id >= 0 && id < c.vocab_size, "token id {} at batch index {} is outside the vocabulary [0, {})", id, i,
             c.vocab_size);
    segments.push_back(Segment{cache, cache->size(), 1});
  }
  k::set_blas_threads(n_threads_);
  Tensor logits = Tensor::zeros(DType::F32, {K, c.vocab_size});
  set_segments(std::move(segments));
  run_blocks(tokens, K, logits.mutable_data<float>());
  for (KVCache* cache : caches) cache->set_size(cache->size() + 1);
  return logits;
}

void Runtime::attention(int64_t layer, const float* q, int64_t q_stride, int64_t T, float* out) {
  const model::ModelConfig& c = model_.config;
  const int64_t hd = c.head_dim, n_heads = c.n_heads, group = c.n_heads / c.n_kv_heads, kvd = c.kv_dim();
  const int64_t window = c.layer_window(layer);
  const float scale = c.attention_scale(), cap = c.attn_softcap;
  const int64_t max_pos = *std::max_element(row_pos_.begin(), row_pos_.begin() + T);
  auto run = [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(max_pos + 1));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / n_heads, h = item % n_heads;
      const int64_t pos = row_pos_[static_cast<size_t>(t)];
      const KVCache& cache = *segs_[row_seg_[static_cast<size_t>(t)]].cache;
      const float* keys = cache.keys(layer, 0);
      const float* values = cache.values(layer, 0);
      const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      const int64_t n = pos + 1 - lo;
      const float* qh = q + t * q_stride + h * hd;
      const int64_t kv_off = (h / group) * hd;
      for (int64_t s = lo; s <= pos; ++s) {
        scores[static_cast<size_t>(s - lo)] = k::dot(qh, keys + s * kvd + kv_off, hd) * scale;
      }
      if (cap > 0) k::softcap(scores.data(), n, cap);
      k::softmax(scores.data(), n);
      float* oh = out + t * (n_heads * hd) + h * hd;
      std::fill(oh, oh + hd, 0.0f);
      for (int64_t s = lo; s <= pos; ++s) {
        const float w = scores[static_cast<size_t>(s - lo)];
        const float* vs = values + s * kvd + kv_off;
        for (int64_t d = 0; d < hd; ++d) oh[d] += w * vs[d];
      }
    }
  };
  const int64_t items = T * n_heads;
  const int64_t work = (max_pos + 1) * hd;  // per item, roughly
  if (n_threads_ == 1 || items < 2 || items * work < (int64_t{1} << 15)) {
    run(0, items);
  } else {
    pool_->parallel_for(items, run);
  }
}

void Runtime::embed_into(std::span<const int32_t> tokens, int64_t p0, float* x, const int64_t* positions) const {
  const model::ModelConfig& c = model_.config;
  const int64_t T = static_cast<int64_t>(tokens.size()), H = c.hidden_size;
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = tokens[static_cast<size_t>(t)];
    float* row = x + t * H;
    if (model_.embed_packed) {
      model_.embed_packed->dequantize_row(id, {row, static_cast<size_t>(H)});
    } else {
      std::memcpy(row, model_.embed.data<float>() + static_cast<int64_t>(id) * H, static_cast<size_t>(H) * sizeof(float));
    }
    if (spec_.scale_embedding) {
      // transformers multiplies by sqrt(hidden) rounded to the weights' float type.
      const float scale = static_cast<float>(std::sqrt(static_cast<double>(H)));
      for (int64_t i = 0; i < H; ++i) row[i] *= scale;
    }
    if (spec_.learned_positions) {
      const float* p = model_.pos_embed.data<float>() + (positions ? positions[t] : p0 + t) * H;
      for (int64_t i = 0; i < H; ++i) row[i] += p[i];
    }
  }
}

std::optional<Runtime::SiteInput> Runtime::linear_input(int64_t layer, const model::LayerWeights& L,
                                                        model::InputSite site, const float* x, int64_t rows,
                                                        int64_t cols) {
  // An online rotation comes first: the hook (calibration) and the activation
  // quantizer see the rotated input that the rotated weights expect.
  if (const model::InputTransform& tr = L.transform[static_cast<size_t>(site)]; tr.active()) {
    QF_CHECK(tr.size == cols, "block {} {}: input transform of size {} on a site of width {}", layer,
             model::input_site_name(site), tr.size, cols);
    float* xt = Scratch::sized(scratch_->xt, rows * cols);
    apply_input_transform(tr, x, rows, xt);
    x = xt;
  }
  if (hook_) hook_(layer, site, x, rows, cols);
  if (stop_after_ == site) return std::nullopt;
  SiteInput in{x, x, rows, cols};
  const model::ActivationQuant& aq = L.act[static_cast<size_t>(site)];
  // The int8 kernels quantize exactly as the simulation does (kernels/activations.h).
  const bool dynamic_int8 = aq.mode == model::ActQuantMode::DynamicToken && aq.bits == 8 && aq.symmetric;
  if (int8_activations_ || dynamic_int8) in.precision = kernels::ActivationPrecision::Int8;
  if (aq.mode != model::ActQuantMode::None) {
    float* out = Scratch::sized(scratch_->actq, rows * cols);
    fake_quantize_activations(x, rows, cols, aq, out);
    in.x = out;
  }
  // Packed layers behind any other activation quantizer start from its float result.
  if (!dynamic_int8) in.raw = in.x;
  return in;
}

void Runtime::apply_input_transform(const model::InputTransform& tr, const float* x, int64_t rows, float* out) {
  const int64_t n = tr.size;
  const float* mix = tr.mix.empty() ? nullptr : tr.mix.data<float>();
  float* tmp = Scratch::sized(scratch_->xt_tmp, rows * n);
  for_rows(rows, n * (n / tr.block + 8), [&](int64_t b, int64_t e) {
    quant::kronecker_transform(x + b * n, e - b, n, tr.block, mix, out + b * n, tmp + b * n);
  });
}

void Runtime::linear(const model::LayerWeights& L, model::LinearKind kind, SiteInput& in, float* out, int64_t ldc,
                     bool accumulate) {
  const int64_t T = in.rows, K = in.cols;
  const kernels::PackedMatrix* w = L.packed_weight(kind);
  if (!w) {
    const Tensor& weight = model::linear_weight(L, kind);
    const int64_t N = spec_.conv1d_weights ? weight.dim(1) : weight.dim(0);
    if (spec_.conv1d_weights) {
      k::conv1d(in.x, T, K, weight.data<float>(), N, out, ldc, accumulate);
    } else {
      k::linear(in.x, T, K, weight.data<float>(), N, out, ldc, accumulate);
    }
    return;
  }
  packed_linear(*w, in, out, ldc, accumulate);
}

void Runtime::packed_linear(const kernels::PackedMatrix& w, SiteInput& in, float* out, int64_t ldc,
                            bool accumulate) {
  const int64_t T = in.rows, K = in.cols;
  kernels::Activations& a = scratch_->kernel_input;
  if (!in.prepared) {
    kernels::prepare_activations(a, in.raw, T, K, K, in.precision == kernels::ActivationPrecision::Int8);
    in.prepared = true;
  }
  // Output rows in blocks of 16 (what every target's row blocking divides),
  // one contiguous run of blocks per thread.
  constexpr int64_t kRowBlock = 16;
  const int64_t N = w.rows(), blocks = (N + kRowBlock - 1) / kRowBlock;
  auto run = [&](int64_t b0, int64_t b1) {
    kernels::matmul(target_, w, a, in.precision, out, ldc, b0 * kRowBlock, std::min(N, b1 * kRowBlock), accumulate);
  };
  if (n_threads_ == 1 || blocks < 2 || T * N * K < (int64_t{1} << 16)) {
    run(0, blocks);
  } else {
    pool_->parallel_for(blocks, run);
  }
}

void Runtime::norm_rows(const Tensor& w, const Tensor& b, const float* x, int64_t T, int64_t n, float* out) {
  const float eps = model_.config.norm_eps;
  const float* wp = w.data<float>();
  const float* bp = b.empty() ? nullptr : b.data<float>();
  const model::NormKind kind = spec_.norm;
  for_rows(T, n, [&](int64_t r0, int64_t r1) {
    for (int64_t t = r0; t < r1; ++t) {
      switch (kind) {
        case model::NormKind::RMS: k::rms_norm(x + t * n, wp, eps, n, out + t * n); break;
        case model::NormKind::RMSPlusOne: k::rms_norm_plus_one(x + t * n, wp, eps, n, out + t * n); break;
        case model::NormKind::Layer: k::layer_norm(x + t * n, wp, bp, eps, n, out + t * n); break;
      }
    }
  });
}

void Runtime::block(int64_t l, const model::LayerWeights& L, float* x, int64_t T) {
  using model::InputSite;
  const model::ModelConfig& c = model_.config;
  const model::BlockSpec& spec = spec_;
  Scratch& s = *scratch_;
  const int64_t H = c.hidden_size, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.intermediate_size;
  const int64_t half = hd / 2;
  float* xn = Scratch::sized(s.xn, T * H);
  float* att = Scratch::sized(s.att, T * qd);
  float* ff_a = Scratch::sized(s.ff1, T * ff);
  // x += out_norm(W in + bias) with sandwich norms (the sublayer's output
  // apart from the residual stream first), else x += W in + bias in place.
  float* sub = spec.sandwich_norms ? Scratch::sized(s.sub, T * H) : nullptr;
  auto add_to_residual = [&](LinearKind kind, SiteInput& in, const Tensor& bias, const Tensor& out_norm) {
    if (sub) {
      linear(L, kind, in, sub, H, preload_bias(bias, T, H, sub, H));
      norm_rows(out_norm, Tensor(), sub, T, H, sub);
      for (int64_t i = 0; i < T * H; ++i) x[i] += sub[i];
    } else {
      if (!bias.empty()) add_bias(bias, T, H, x, H);
      linear(L, kind, in, x, H, /*accumulate=*/true);
    }
  };

  // One segment: keys and values go straight into its cache rows; several:
  // into scratch, scattered to each row's own cache after RoPE.
  const bool direct = segs_.size() == 1;
  float* kc = direct ? segs_[0].cache->keys(l, segs_[0].p0) : Scratch::sized(s.kbuf, T * kvd);
  float* vc = direct ? segs_[0].cache->values(l, segs_[0].p0) : Scratch::sized(s.vbuf, T * kvd);
  norm_rows(L.attn_norm, L.attn_norm_bias, x, T, H, xn);
  auto a_in = linear_input(l, L, InputSite::AttnIn, xn, T, H);
  if (!a_in) return;
  float* q = nullptr;
  int64_t q_stride = qd;
  if (spec.fused_qkv) {
    q_stride = qd + 2 * kvd;
    q = Scratch::sized(s.q, T * q_stride);
    linear(L, LinearKind::QKV, *a_in, q, q_stride, preload_bias(L.b_qkv, T, q_stride, q, q_stride));
    for (int64_t t = 0; t < T; ++t) {
      std::memcpy(kc + t * kvd, q + t * q_stride + qd, static_cast<size_t>(kvd) * sizeof(float));
      std::memcpy(vc + t * kvd, q + t * q_stride + qd + kvd, static_cast<size_t>(kvd) * sizeof(float));
    }
  } else {
    q = Scratch::sized(s.q, T * qd);
    linear(L, LinearKind::Q, *a_in, q, qd, preload_bias(L.bq, T, qd, q, qd));
    linear(L, LinearKind::K, *a_in, kc, kvd, preload_bias(L.bk, T, kvd, kc, kvd));
    linear(L, LinearKind::V, *a_in, vc, kvd, preload_bias(L.bv, T, kvd, vc, kvd));
  }
  if (spec.qk_norm) {
    // Heads are rows of head_dim floats: q's rows are q_stride apart, so norm per row of T.
    for (int64_t t = 0; t < T; ++t) {
      norm_rows(L.q_norm, Tensor(), q + t * q_stride, c.n_heads, hd, q + t * q_stride);
      norm_rows(L.k_norm, Tensor(), kc + t * kvd, c.n_kv_heads, hd, kc + t * kvd);
    }
  }
  if (!spec.learned_positions) {
    const int table = c.layer_is_sliding(l) && c.rope_local_theta > 0 ? 1 : 0;
    const float* cos = s.cos[table].data();
    const float* sin = s.sin[table].data();
    for_rows(T, qd + kvd, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        for (int64_t h = 0; h < c.n_heads; ++h)
          k::rope_half(q + t * q_stride + h * hd, hd, cos + t * half, sin + t * half);
        for (int64_t h = 0; h < c.n_kv_heads; ++h)
          k::rope_half(kc + t * kvd + h * hd, hd, cos + t * half, sin + t * half);
      }
    });
  }
  if (!direct) {
    for (int64_t t = 0; t < T; ++t) {
      std::memcpy(key_row(l, t), kc + t * kvd, static_cast<size_t>(kvd) * sizeof(float));
      std::memcpy(value_row(l, t), vc + t * kvd, static_cast<size_t>(kvd) * sizeof(float));
    }
  }
  attention(l, q, q_stride, T, att);
  auto o_in = linear_input(l, L, InputSite::AttnOut, att, T, qd);
  if (!o_in) return;
  add_to_residual(LinearKind::O, *o_in, L.bo, L.attn_out_norm);

  norm_rows(L.ffn_norm, L.ffn_norm_bias, x, T, H, xn);
  auto f_in = linear_input(l, L, InputSite::FfnIn, xn, T, H);
  if (!f_in) return;
  if (spec.mlp == model::MlpKind::GeluTanh) {
    linear(L, LinearKind::Up, *f_in, ff_a, ff, preload_bias(L.b_up, T, ff, ff_a, ff));
    for_rows(T, ff, [&](int64_t b, int64_t e) {
      for (int64_t i = b * ff; i < e * ff; ++i) ff_a[i] = k::gelu_tanh(ff_a[i]);
    });
  } else {
    float* up = Scratch::sized(s.ff2, T * ff);
    linear(L, LinearKind::Gate, *f_in, ff_a, ff, preload_bias(L.b_gate, T, ff, ff_a, ff));
    linear(L, LinearKind::Up, *f_in, up, ff, preload_bias(L.b_up, T, ff, up, ff));
    const bool swiglu = spec.mlp == model::MlpKind::SwiGLU;
    for_rows(T, ff, [&](int64_t b, int64_t e) {
      if (swiglu) {
        k::silu_mul(ff_a + b * ff, up + b * ff, (e - b) * ff);
      } else {
        k::gelu_mul(ff_a + b * ff, up + b * ff, (e - b) * ff);
      }
    });
  }
  auto d_in = linear_input(l, L, InputSite::FfnHidden, ff_a, T, ff);
  if (!d_in) return;
  add_to_residual(LinearKind::Down, *d_in, L.b_down, L.ffn_out_norm);
}

void Runtime::head_into(const float* x, int64_t rows, float* logits) {
  const model::ModelConfig& c = model_.config;
  const int64_t H = c.hidden_size;
  float* xn = Scratch::sized(scratch_->xn, rows * H);
  norm_rows(model_.final_norm, model_.final_norm_bias, x, rows, H, xn);
  if (model_.lm_head_packed) {
    SiteInput in{xn, xn, rows, H};
    in.precision = int8_activations_ ? kernels::ActivationPrecision::Int8 : kernels::ActivationPrecision::F32;
    packed_linear(*model_.lm_head_packed, in, logits, c.vocab_size, false);
  } else {
    k::linear(xn, rows, H, model_.lm_head.data<float>(), c.vocab_size, logits, c.vocab_size, false);
  }
  if (c.final_softcap > 0) k::softcap(logits, rows * c.vocab_size, c.final_softcap);
}

void Runtime::prepare_positions(int64_t T) {
  if (spec_.learned_positions) return;
  const model::ModelConfig& c = model_.config;
  Scratch& s = *scratch_;
  const int64_t half = c.head_dim / 2;
  const int64_t seq_len = *std::max_element(row_pos_.begin(), row_pos_.begin() + T) + 1;
  const bool local = c.rope_local_theta > 0 && c.sliding_window > 0;
  for (int table = 0; table < (local ? 2 : 1); ++table) {
    // Recomputed per call: "dynamic" scaling depends on the longest position.
    const model::RopeFrequencies f = model::rope_frequencies(c, table == 1, seq_len);
    float* cos = Scratch::sized(s.cos[table], T * half);
    float* sin = Scratch::sized(s.sin[table], T * half);
    for (int64_t t = 0; t < T; ++t) {
      const double pos = static_cast<double>(row_pos_[static_cast<size_t>(t)]);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = pos * f.inv_freq[static_cast<size_t>(i)];
        cos[t * half + i] = static_cast<float>(std::cos(angle) * f.attention_factor);
        sin[t * half + i] = static_cast<float>(std::sin(angle) * f.attention_factor);
      }
    }
  }
}

void Runtime::run_blocks(std::span<const int32_t> tokens, int64_t out_rows, float* logits) {
  const model::ModelConfig& c = model_.config;
  const int64_t T = static_cast<int64_t>(tokens.size());
  float* x = Scratch::sized(scratch_->x, T * c.hidden_size);
  embed_into(tokens, 0, x, row_pos_.data());
  prepare_positions(T);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    block(l, model_.layers[static_cast<size_t>(l)], x, T);
  }
  head_into(x + (T - out_rows) * c.hidden_size, out_rows, logits);
}

Tensor Runtime::embed(std::span<const int32_t> tokens) const {
  const model::ModelConfig& c = model_.config;
  const int64_t T = static_cast<int64_t>(tokens.size());
  QF_CHECK(T > 0 && T <= cache_.capacity(), "{} tokens do not fit a context of {} positions", T, cache_.capacity());
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = tokens[static_cast<size_t>(t)];
    QF_CHECK(id >= 0 && id < c.vocab_size, "token id {} at index {} is outside the vocabulary [0, {})", id, t,
             c.vocab_size);
  }
  Tensor x = Tensor::zeros(DType::F32, {T, c.hidden_size});
  embed_into(tokens, 0, x.mutable_data<float>());
  return x;
}

void Runtime::forward_block(int64_t layer, const model::LayerWeights& weights, Tensor& x,
                            std::optional<model::InputSite> stop_after) {
  const model::ModelConfig& c = model_.config;
  QF_CHECK(layer >= 0 && layer < c.n_layers, "block {} outside [0, {})", layer, c.n_layers);
  QF_CHECK(x.dtype() == DType::F32 && x.ndim() == 2 && x.dim(1) == c.hidden_size && x.writable(),
           "forward_block needs writable F32 hidden states [T, {}], got {} {}", c.hidden_size,
           dtype_name(x.dtype()), shape_to_string(x.shape()));
  const int64_t T = x.dim(0);
  QF_CHECK(T > 0 && T <= cache_.capacity(), "{} positions do not fit a context of {}", T, cache_.capacity());
  cache_.clear();
  k::set_blas_threads(n_threads_);
  set_segments({Segment{&cache_, 0, T}});
  prepare_positions(T);
  stop_after_ = stop_after;
  try {
    block(layer, weights, x.mutable_data<float>(), T);
  } catch (...) {
    stop_after_.reset();
    throw;
  }
  stop_after_.reset();
}

Tensor Runtime::head(const Tensor& x) {
  const model::ModelConfig& c = model_.config;
  QF_CHECK(x.dtype() == DType::F32 && x.ndim() == 2 && x.dim(1) == c.hidden_size,
           "head needs F32 hidden states [T, {}], got {}", c.hidden_size, shape_to_string(x.shape()));
  k::set_blas_threads(n_threads_);
  Tensor logits = Tensor::zeros(DType::F32, {x.dim(0), c.vocab_size});
  head_into(x.data<float>(), x.dim(0), logits.mutable_data<float>());
  return logits;
}

}  // namespace qf::runtime
