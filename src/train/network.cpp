#include "train/network.h"


#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/arch/family.h"
#include "model/rope.h"
#include "runtime/activation_quant.h"
#include "runtime/fp32_ops.h"

namespace qf::train {

using model::Architecture;
using model::LinearKind;

namespace {

float* sized(std::vector<float>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

void add_bias(const Tensor& b, int64_t rows, int64_t n, float* y) {
  if (b.empty()) return;
  const float* bb = b.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += bb[i];
}

const float* f32(const Tensor& t, const char* what, const std::string& source) {
  QF_CHECK(t.empty() || t.dtype() == DType::F32, "{}: {} is {}, training needs F32", source, what,
           dtype_name(t.dtype()));
  return t.empty() ? nullptr : t.data<float>();
}

}  // namespace

// Every activation block's backward needs, for one block.
struct Network::Tape {
  int64_t B = 0, T = 0;
  std::vector<float> x, xn1, a1, q, k, v, qkv, probs, att, a2, x1, xn2, a3, g, u, h, a4;
  std::vector<float> q_raw, k_raw;  // q and k before their per-head norms (BlockSpec::qk_norm)
  // backward scratch
  std::vector<float> d1, d2, datt, dq, dk, dv, dqkv, dg, du, dh;
  uint64_t bytes() const {
    size_t n = 0;
    for (const auto* buf : {&x, &xn1, &a1, &q, &k, &v, &qkv, &probs, &att, &a2, &x1, &xn2, &a3, &g, &u, &h, &a4, &d1,
                          &d2, &datt, &dq, &dk, &dv, &dqkv, &dg, &du, &dh, &q_raw, &k_raw})
      n += buf->capacity();
    return n * sizeof(float);
  }
  // What the linear layers of each site multiplied in the forward pass (attn_in,
  // attn_out, ffn_in, ffn_hidden): the fake-quantized copies when activations
  // are quantized, else the float inputs themselves.
  std::array<const float*, 4> linear_inputs(bool quantized_activations) const {
    if (quantized_activations) return {a1.data(), a2.data(), a3.data(), a4.data()};
    return {xn1.data(), att.data(), xn2.data(), h.data()};
  }
};

Network::Network(const model::Model& m, NetworkOptions options) : model_(m), options_(options) {
  const model::ModelConfig& c = m.config;
  // The trainer's taped ops cover the Llama and GPT-2 blocks; other parts of
  // a BlockSpec have no backward pass here yet.
  const model::BlockSpec& spec = model::block_spec(c);
  const model::BlockSpec llama{}, qwen3{.qk_norm = true}, gpt2 = model::find_family("gpt2")->block;
  QF_CHECK(spec == llama || spec == qwen3 || spec == gpt2,
           "{}: quantization-aware training supports the Llama, Mistral, Qwen2/3, Phi-3 and GPT-2 blocks; {} has{}{}{} "
           "(use quantize --method gptq|awq|rtn for it)",
           m.source, c.model_type, spec.sandwich_norms ? " sandwich norms" : "",
           spec.norm == model::NormKind::RMSPlusOne ? " (1 + w) RMSNorm" : "",
           spec.mlp == model::MlpKind::GeGLU ? " a GeGLU MLP" : "");
  QF_CHECK(c.final_softcap == 0 && c.attn_softcap == 0 && c.rope_local_theta == 0,
           "{}: quantization-aware training does not support soft-capping or per-layer RoPE bases", m.source);
  QF_CHECK(!m.lm_head_packed && !m.embed_packed, "{}: the model holds packed (quantized) weights; training needs a float model",
           m.source);
  linears_ = model::all_linears(c);
  for (const auto& l : linears_) {
    QF_CHECK(!m.layers[static_cast<size_t>(l.layer)].packed_weight(l.kind),
             "{}: {} is already quantized; quantization-aware training starts from a float checkpoint", m.source,
             l.name);
  }
  for (const auto& L : m.layers) {
    f32(L.attn_norm, "attn norm", m.source);
    f32(L.ffn_norm, "ffn norm", m.source);
  }
  f32(m.embed, "embedding", m.source);
  f32(m.lm_head, "lm_head", m.source);
  f32(m.final_norm, "final norm", m.source);
  weights_.assign(linears_.size(), nullptr);
  if (options_.n_threads < 1) options_.n_threads = 1;
  pool_ = std::make_unique<ThreadPool>(options_.n_threads);
  pf_ = [this](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (options_.n_threads == 1 || n < 2) {
      fn(0, n);
    } else {
      pool_->parallel_for(n, fn);
    }
  };
  for (int64_t l = 0; l < c.n_layers; ++l) tapes_.push_back(std::make_unique<Tape>());
  xs_.resize(static_cast<size_t>(c.n_layers + 1));
}

Network::~Network() = default;

void Network::set_weight(size_t i, const float* w) {
  QF_CHECK(i < weights_.size(), "linear layer index {} out of range", i);
  weights_[i] = w;
}

size_t Network::linear_index(int64_t layer, LinearKind kind) const {
  for (size_t i = 0; i < linears_.size(); ++i)
    if (linears_[i].layer == layer && linears_[i].kind == kind) return i;
  fail("block {} has no {} layer", layer, model::linear_kind_name(model_.config, kind));
}

const float* Network::weight(int64_t layer, LinearKind kind) const {
  const float* w = weights_[linear_index(layer, kind)];
  QF_CHECK(w, "no weight set for {}", linears_[linear_index(layer, kind)].name);
  return w;
}

const float* Network::site_input(const float* x, int64_t rows, int64_t cols, std::vector<float>& buf) const {
  if (!options_.int8_activations) return x;
  model::ActivationQuant aq;
  aq.mode = model::ActQuantMode::DynamicToken;
  aq.bits = 8;
  aq.symmetric = true;
  float* out = sized(buf, rows * cols);
  runtime::fake_quantize_activations(x, rows, cols, aq, out);
  return out;
}

void Network::prepare_positions(int64_t T) {
  if (T == pos_T_) return;
  const model::ModelConfig& c = model_.config;
  const int64_t half = c.head_dim / 2;
  cos_.assign(static_cast<size_t>(T * half), 0.0f);
  sin_.assign(static_cast<size_t>(T * half), 0.0f);
  // As the runtime computes them (model/rope.h, double angles, then rounded).
  const model::RopeFrequencies f = model::rope_frequencies(c, false, T);
  for (int64_t i = 0; i < half; ++i) {
    const double inv = f.inv_freq[static_cast<size_t>(i)];
    for (int64_t t = 0; t < T; ++t) {
      const double angle = static_cast<double>(t) * inv;
      cos_[static_cast<size_t>(t * half + i)] = static_cast<float>(std::cos(angle) * f.attention_factor);
      sin_[static_cast<size_t>(t * half + i)] = static_cast<float>(std::sin(angle) * f.attention_factor);
    }
  }
  pos_T_ = T;
}

void Network::embed(const int32_t* tokens, int64_t B, int64_t T, float* x) const {
  const model::ModelConfig& c = model_.config;
  const int64_t H = c.hidden_size;
  QF_CHECK(c.arch != Architecture::GPT2 || T <= c.max_positions, "{} positions exceed GPT-2's {}", T, c.max_positions);
  const float* e = model_.embed.data<float>();
  for (int64_t r = 0; r < B * T; ++r) {
    const int32_t id = tokens[r];
    QF_CHECK(id >= 0 && id < c.vocab_size, "token id {} outside the vocabulary [0, {})", id, c.vocab_size);
    std::memcpy(x + r * H, e + static_cast<int64_t>(id) * H, static_cast<size_t>(H) * sizeof(float));
    if (c.arch == Architecture::GPT2) {
      const float* p = model_.pos_embed.data<float>() + (r % T) * H;
      for (int64_t i = 0; i < H; ++i) x[r * H + i] += p[i];
    }
  }
}

void Network::block_forward(int64_t layer, const float* x, int64_t B, int64_t T, float* y) {
  QF_CHECK(layer >= 0 && layer < model_.config.n_layers, "block {} out of range", layer);
  Tape& t = *tapes_[static_cast<size_t>(layer)];
  t.B = B;
  t.T = T;
  runtime::fp32::set_blas_threads(options_.n_threads);
  if (model_.config.arch == Architecture::Llama) {
    prepare_positions(T);
    block_llama(layer, t, x, y);
  } else {
    block_gpt2(layer, t, x, y);
  }
}

void Network::block_backward(int64_t layer, const float* dy, float* dx, const std::vector<float*>& dw) {
  Tape& t = *tapes_[static_cast<size_t>(layer)];
  QF_CHECK(t.B > 0, "block {} has no forward to differentiate", layer);
  runtime::fp32::set_blas_threads(options_.n_threads);
  if (model_.config.arch == Architecture::Llama) {
    prepare_positions(t.T);
    back_llama(layer, t, dy, dx, dw);
  } else {
    back_gpt2(layer, t, dy, dx, dw);
  }
}

void Network::block_llama(int64_t l, Tape& t, const float* xin, float* y) {
  const model::ModelConfig& c = model_.config;
  const model::LayerWeights& L = model_.layers[static_cast<size_t>(l)];
  const int64_t N = t.B * t.T, H = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.intermediate_size;
  const float eps = c.norm_eps;
  float* x = sized(t.x, N * H);
  std::memcpy(x, xin, static_cast<size_t>(N * H) * sizeof(float));
  float* xn1 = sized(t.xn1, N * H);
  rms_norm_forward(x, L.attn_norm.data<float>(), eps, N, H, xn1, pf_);
  const float* a1 = site_input(xn1, N, H, t.a1);
  float* q = sized(t.q, N * qd);
  float* k = sized(t.k, N * kvd);
  float* v = sized(t.v, N * kvd);
  linear_forward(a1, N, H, weight(l, LinearKind::Q), qd, q, false);
  linear_forward(a1, N, H, weight(l, LinearKind::K), kvd, k, false);
  linear_forward(a1, N, H, weight(l, LinearKind::V), kvd, v, false);
  add_bias(L.bq, N, qd, q);
  add_bias(L.bk, N, kvd, k);
  add_bias(L.bv, N, kvd, v);
  if (!L.q_norm.empty()) {  // Qwen3: an RMSNorm over each head of q and k, before RoPE
    float* q_raw = sized(t.q_raw, N * qd);
    float* k_raw = sized(t.k_raw, N * kvd);
    std::memcpy(q_raw, q, static_cast<size_t>(N * qd) * sizeof(float));
    std::memcpy(k_raw, k, static_cast<size_t>(N * kvd) * sizeof(float));
    rms_norm_forward(q_raw, L.q_norm.data<float>(), eps, N * c.n_heads, c.head_dim, q, pf_);
    rms_norm_forward(k_raw, L.k_norm.data<float>(), eps, N * c.n_kv_heads, c.head_dim, k, pf_);
  }
  rope_forward(q, N, t.T, qd, c.n_heads, c.head_dim, cos_.data(), sin_.data());
  rope_forward(k, N, t.T, kvd, c.n_kv_heads, c.head_dim, cos_.data(), sin_.data());
  AttentionShape as{t.B, t.T, c.n_heads, c.n_kv_heads, c.head_dim, c.sliding_window, qd, kvd};
  float* probs = sized(t.probs, t.B * c.n_heads * t.T * t.T);
  float* att = sized(t.att, N * qd);
  attention_forward(as, q, k, v, probs, att, pf_);
  const float* a2 = site_input(att, N, qd, t.a2);
  float* x1 = sized(t.x1, N * H);
  std::memcpy(x1, x, static_cast<size_t>(N * H) * sizeof(float));
  add_bias(L.bo, N, H, x1);
  linear_forward(a2, N, qd, weight(l, LinearKind::O), H, x1, true);
  float* xn2 = sized(t.xn2, N * H);
  rms_norm_forward(x1, L.ffn_norm.data<float>(), eps, N, H, xn2, pf_);
  const float* a3 = site_input(xn2, N, H, t.a3);
  float* g = sized(t.g, N * ff);
  float* u = sized(t.u, N * ff);
  linear_forward(a3, N, H, weight(l, LinearKind::Gate), ff, g, false);
  linear_forward(a3, N, H, weight(l, LinearKind::Up), ff, u, false);
  add_bias(L.b_gate, N, ff, g);
  add_bias(L.b_up, N, ff, u);
  float* h = sized(t.h, N * ff);
  pf_(N, [&](int64_t b, int64_t e) { swiglu_forward(g + b * ff, u + b * ff, (e - b) * ff, h + b * ff); });
  const float* a4 = site_input(h, N, ff, t.a4);
  std::memcpy(y, x1, static_cast<size_t>(N * H) * sizeof(float));
  add_bias(L.b_down, N, H, y);
  linear_forward(a4, N, ff, weight(l, LinearKind::Down), H, y, true);
}

void Network::back_llama(int64_t l, Tape& t, const float* dy, float* dx, const std::vector<float*>& dw) {
  const model::ModelConfig& c = model_.config;
  const model::LayerWeights& L = model_.layers[static_cast<size_t>(l)];
  const int64_t N = t.B * t.T, H = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.intermediate_size;
  const float eps = c.norm_eps;
  auto dW = [&](LinearKind kind) { return dw[linear_index(l, kind)]; };
  const auto [a1, a2, a3, a4] = t.linear_inputs(options_.int8_activations);

  // y = x1 + a4 Wd^T
  float* dx1 = sized(t.d1, N * H);
  std::memcpy(dx1, dy, static_cast<size_t>(N * H) * sizeof(float));
  float* dh = sized(t.dh, N * ff);
  linear_backward(a4, N, ff, weight(l, LinearKind::Down), H, dy, dh, false, dW(LinearKind::Down), false);
  float* dg = sized(t.dg, N * ff);
  float* du = sized(t.du, N * ff);
  pf_(N, [&](int64_t b, int64_t e) {
    swiglu_backward(t.g.data() + b * ff, t.u.data() + b * ff, dh + b * ff, (e - b) * ff, dg + b * ff, du + b * ff);
  });
  float* dxn2 = sized(t.d2, N * H);
  linear_backward(a3, N, H, weight(l, LinearKind::Gate), ff, dg, dxn2, false, dW(LinearKind::Gate), false);
  linear_backward(a3, N, H, weight(l, LinearKind::Up), ff, du, dxn2, true, dW(LinearKind::Up), false);
  rms_norm_backward(t.x1.data(), L.ffn_norm.data<float>(), eps, N, H, dxn2, dx1, true, pf_);

  // x1 = x + a2 Wo^T
  float* datt = sized(t.datt, N * qd);
  linear_backward(a2, N, qd, weight(l, LinearKind::O), H, dx1, datt, false, dW(LinearKind::O), false);
  AttentionShape as{t.B, t.T, c.n_heads, c.n_kv_heads, c.head_dim, c.sliding_window, qd, kvd};
  float* dq = sized(t.dq, N * qd);
  float* dk = sized(t.dk, N * kvd);
  float* dv = sized(t.dv, N * kvd);
  attention_backward(as, t.q.data(), t.k.data(), t.v.data(), t.probs.data(), datt, dq, dk, dv, pf_);
  rope_backward(dq, N, t.T, qd, c.n_heads, c.head_dim, cos_.data(), sin_.data());
  rope_backward(dk, N, t.T, kvd, c.n_kv_heads, c.head_dim, cos_.data(), sin_.data());
  if (!L.q_norm.empty()) {  // through the per-head norms, in place (the norms stay frozen)
    std::vector<float>& scratch = t.dqkv;
    float* tmp = sized(scratch, N * std::max(qd, kvd));
    rms_norm_backward(t.q_raw.data(), L.q_norm.data<float>(), eps, N * c.n_heads, c.head_dim, dq, tmp, false, pf_);
    std::memcpy(dq, tmp, static_cast<size_t>(N * qd) * sizeof(float));
    rms_norm_backward(t.k_raw.data(), L.k_norm.data<float>(), eps, N * c.n_kv_heads, c.head_dim, dk, tmp, false, pf_);
    std::memcpy(dk, tmp, static_cast<size_t>(N * kvd) * sizeof(float));
  }
  float* da1 = sized(t.d2, N * H);
  linear_backward(a1, N, H, weight(l, LinearKind::Q), qd, dq, da1, false, dW(LinearKind::Q), false);
  linear_backward(a1, N, H, weight(l, LinearKind::K), kvd, dk, da1, true, dW(LinearKind::K), false);
  linear_backward(a1, N, H, weight(l, LinearKind::V), kvd, dv, da1, true, dW(LinearKind::V), false);
  if (dx) {
    std::memcpy(dx, dx1, static_cast<size_t>(N * H) * sizeof(float));
    rms_norm_backward(t.x.data(), L.attn_norm.data<float>(), eps, N, H, da1, dx, true, pf_);
  }
}

void Network::block_gpt2(int64_t l, Tape& t, const float* xin, float* y) {
  const model::ModelConfig& c = model_.config;
  const model::LayerWeights& L = model_.layers[static_cast<size_t>(l)];
  const int64_t N = t.B * t.T, H = c.hidden_size, ff = c.intermediate_size;
  const float eps = c.norm_eps;
  float* x = sized(t.x, N * H);
  std::memcpy(x, xin, static_cast<size_t>(N * H) * sizeof(float));
  float* xn1 = sized(t.xn1, N * H);
  layer_norm_forward(x, L.attn_norm.data<float>(), L.attn_norm_bias.data<float>(), eps, N, H, xn1, pf_);
  const float* a1 = site_input(xn1, N, H, t.a1);
  float* qkv = sized(t.qkv, N * 3 * H);
  linear_forward(a1, N, H, weight(l, LinearKind::QKV), 3 * H, qkv, false);
  add_bias(L.b_qkv, N, 3 * H, qkv);
  AttentionShape as{t.B, t.T, c.n_heads, c.n_kv_heads, c.head_dim, 0, 3 * H, 3 * H};
  float* probs = sized(t.probs, t.B * c.n_heads * t.T * t.T);
  float* att = sized(t.att, N * H);
  attention_forward(as, qkv, qkv + H, qkv + 2 * H, probs, att, pf_);
  const float* a2 = site_input(att, N, H, t.a2);
  float* x1 = sized(t.x1, N * H);
  std::memcpy(x1, x, static_cast<size_t>(N * H) * sizeof(float));
  add_bias(L.bo, N, H, x1);
  linear_forward(a2, N, H, weight(l, LinearKind::O), H, x1, true);
  float* xn2 = sized(t.xn2, N * H);
  layer_norm_forward(x1, L.ffn_norm.data<float>(), L.ffn_norm_bias.data<float>(), eps, N, H, xn2, pf_);
  const float* a3 = site_input(xn2, N, H, t.a3);
  float* fc = sized(t.g, N * ff);
  linear_forward(a3, N, H, weight(l, LinearKind::Up), ff, fc, false);
  add_bias(L.b_up, N, ff, fc);
  float* h = sized(t.h, N * ff);
  pf_(N, [&](int64_t b, int64_t e) { gelu_forward(fc + b * ff, (e - b) * ff, h + b * ff); });
  const float* a4 = site_input(h, N, ff, t.a4);
  std::memcpy(y, x1, static_cast<size_t>(N * H) * sizeof(float));
  add_bias(L.b_down, N, H, y);
  linear_forward(a4, N, ff, weight(l, LinearKind::Down), H, y, true);
}

void Network::back_gpt2(int64_t l, Tape& t, const float* dy, float* dx, const std::vector<float*>& dw) {
  const model::ModelConfig& c = model_.config;
  const model::LayerWeights& L = model_.layers[static_cast<size_t>(l)];
  const int64_t N = t.B * t.T, H = c.hidden_size, ff = c.intermediate_size;
  const float eps = c.norm_eps;
  auto dW = [&](LinearKind kind) { return dw[linear_index(l, kind)]; };
  const auto [a1, a2, a3, a4] = t.linear_inputs(options_.int8_activations);

  float* dx1 = sized(t.d1, N * H);
  std::memcpy(dx1, dy, static_cast<size_t>(N * H) * sizeof(float));
  float* dh = sized(t.dh, N * ff);
  linear_backward(a4, N, ff, weight(l, LinearKind::Down), H, dy, dh, false, dW(LinearKind::Down), false);
  float* dfc = sized(t.dg, N * ff);
  pf_(N, [&](int64_t b, int64_t e) { gelu_backward(t.g.data() + b * ff, dh + b * ff, (e - b) * ff, dfc + b * ff); });
  float* dxn2 = sized(t.d2, N * H);
  linear_backward(a3, N, H, weight(l, LinearKind::Up), ff, dfc, dxn2, false, dW(LinearKind::Up), false);
  layer_norm_backward(t.x1.data(), L.ffn_norm.data<float>(), eps, N, H, dxn2, dx1, true, pf_);

  float* datt = sized(t.datt, N * H);
  linear_backward(a2, N, H, weight(l, LinearKind::O), H, dx1, datt, false, dW(LinearKind::O), false);
  AttentionShape as{t.B, t.T, c.n_heads, c.n_kv_heads, c.head_dim, 0, 3 * H, 3 * H};
  float* dqkv = sized(t.dqkv, N * 3 * H);
  const float* qkv = t.qkv.data();
  attention_backward(as, qkv, qkv + H, qkv + 2 * H, t.probs.data(), datt, dqkv, dqkv + H, dqkv + 2 * H, pf_);
  float* da1 = sized(t.d2, N * H);
  linear_backward(a1, N, H, weight(l, LinearKind::QKV), 3 * H, dqkv, da1, false, dW(LinearKind::QKV), false);
  if (dx) {
    std::memcpy(dx, dx1, static_cast<size_t>(N * H) * sizeof(float));
    layer_norm_backward(t.x.data(), L.attn_norm.data<float>(), eps, N, H, da1, dx, true, pf_);
  }
}

void Network::head_forward(const float* x, int64_t rows, float* logits) {
  const model::ModelConfig& c = model_.config;
  const int64_t H = c.hidden_size;
  runtime::fp32::set_blas_threads(options_.n_threads);
  float* hx = sized(head_x_, rows * H);
  std::memcpy(hx, x, static_cast<size_t>(rows * H) * sizeof(float));
  float* xn = sized(head_xn_, rows * H);
  if (c.arch == Architecture::Llama) {
    rms_norm_forward(hx, model_.final_norm.data<float>(), c.norm_eps, rows, H, xn, pf_);
  } else {
    layer_norm_forward(hx, model_.final_norm.data<float>(), model_.final_norm_bias.data<float>(), c.norm_eps, rows, H,
                       xn, pf_);
  }
  linear_forward(xn, rows, H, model_.lm_head.data<float>(), c.vocab_size, logits, false);
}

void Network::head_backward(const float* dlogits, float* dx) {
  const model::ModelConfig& c = model_.config;
  const int64_t H = c.hidden_size, rows = static_cast<int64_t>(head_x_.size()) / H;
  std::vector<float> dxn(static_cast<size_t>(rows * H));
  linear_backward(head_xn_.data(), rows, H, model_.lm_head.data<float>(), c.vocab_size, dlogits, dxn.data(), false,
                  nullptr, false);
  if (c.arch == Architecture::Llama) {
    rms_norm_backward(head_x_.data(), model_.final_norm.data<float>(), c.norm_eps, rows, H, dxn.data(), dx, false, pf_);
  } else {
    layer_norm_backward(head_x_.data(), model_.final_norm.data<float>(), c.norm_eps, rows, H, dxn.data(), dx, false,
                        pf_);
  }
}

void Network::forward(const int32_t* tokens, int64_t B, int64_t T, float* logits) {
  const model::ModelConfig& c = model_.config;
  const int64_t N = B * T, H = c.hidden_size;
  B_ = B;
  T_ = T;
  head_x_.resize(static_cast<size_t>(N * H));
  head_xn_.resize(static_cast<size_t>(N * H));
  for (auto& x : xs_) x.resize(static_cast<size_t>(N * H));
  embed(tokens, B, T, xs_[0].data());
  for (int64_t l = 0; l < c.n_layers; ++l)
    block_forward(l, xs_[static_cast<size_t>(l)].data(), B, T, xs_[static_cast<size_t>(l + 1)].data());
  head_forward(xs_.back().data(), N, logits);
}

void Network::backward(const float* dlogits, const std::vector<float*>& dw) {
  const model::ModelConfig& c = model_.config;
  const int64_t N = B_ * T_, H = c.hidden_size;
  QF_CHECK(N > 0, "backward() needs a forward() first");
  float* da = sized(dxa_, N * H);
  float* db = sized(dxb_, N * H);
  head_backward(dlogits, da);
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    block_backward(l, da, l > 0 ? db : nullptr, dw);
    std::swap(da, db);
  }
}

const float* Network::block_output(int64_t layer) const { return xs_[static_cast<size_t>(layer + 1)].data(); }

uint64_t Network::tape_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tapes_) n += t->bytes();
  for (const auto& x : xs_) n += x.capacity() * sizeof(float);
  n += (head_x_.capacity() + head_xn_.capacity() + dxa_.capacity() + dxb_.capacity()) * sizeof(float);
  return n;
}

}  // namespace qf::train
