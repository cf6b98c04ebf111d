#include "model/linear_layers.h"

#include <fmt/format.h>

#include "core/error.h"

namespace qf::model {
namespace {

Tensor transpose_f32(const Tensor& t) {
  const Tensor f = t.dtype() == DType::F32 ? t : t.to_f32();
  const int64_t r = f.rows(), c = f.cols();
  Tensor out = Tensor::zeros(DType::F32, {c, r});
  const float* src = f.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) dst[j * r + i] = src[i * c + j];
  return out;
}

}  // namespace

std::vector<LinearLayer> block_linears(const ModelConfig& c, int64_t layer) {
  std::vector<LinearLayer> out;
  const int64_t h = c.hidden_size, ff = c.intermediate_size;
  auto add = [&](LinearKind kind, InputSite site, int64_t in, int64_t outf) {
    LinearLayer l;
    l.layer = layer;
    l.kind = kind;
    l.site = site;
    l.in_features = in;
    l.out_features = outf;
    l.conv1d = c.arch == Architecture::GPT2;
    const bool attn = kind == LinearKind::Q || kind == LinearKind::K || kind == LinearKind::V ||
                      kind == LinearKind::QKV || kind == LinearKind::O;
    const char* part = attn ? (c.arch == Architecture::Llama ? "self_attn" : "attn") : "mlp";
    l.name = fmt::format("{}.{}.{}", block_prefix(c, layer), part, linear_kind_name(c, kind));
    out.push_back(std::move(l));
  };
  if (c.arch == Architecture::Llama) {
    add(LinearKind::Q, InputSite::AttnIn, h, c.q_dim());
    add(LinearKind::K, InputSite::AttnIn, h, c.kv_dim());
    add(LinearKind::V, InputSite::AttnIn, h, c.kv_dim());
    add(LinearKind::O, InputSite::AttnOut, c.q_dim(), h);
    add(LinearKind::Gate, InputSite::FfnIn, h, ff);
    add(LinearKind::Up, InputSite::FfnIn, h, ff);
    add(LinearKind::Down, InputSite::FfnHidden, ff, h);
  } else {
    add(LinearKind::QKV, InputSite::AttnIn, h, 3 * h);
    add(LinearKind::O, InputSite::AttnOut, h, h);
    add(LinearKind::Up, InputSite::FfnIn, h, ff);
    add(LinearKind::Down, InputSite::FfnHidden, ff, h);
  }
  return out;
}

std::vector<LinearLayer> all_linears(const ModelConfig& c) {
  std::vector<LinearLayer> out;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    auto b = block_linears(c, l);
    out.insert(out.end(), std::make_move_iterator(b.begin()), std::make_move_iterator(b.end()));
  }
  return out;
}

std::string block_prefix(const ModelConfig& c, int64_t layer) {
  return c.arch == Architecture::Llama ? fmt::format("model.layers.{}", layer) : fmt::format("h.{}", layer);
}

std::string linear_kind_name(const ModelConfig& c, LinearKind kind) {
  const bool gpt2 = c.arch == Architecture::GPT2;
  switch (kind) {
    case LinearKind::Q: return "q_proj";
    case LinearKind::K: return "k_proj";
    case LinearKind::V: return "v_proj";
    case LinearKind::QKV: return "c_attn";
    case LinearKind::O: return gpt2 ? "c_proj" : "o_proj";
    case LinearKind::Gate: return "gate_proj";
    case LinearKind::Up: return gpt2 ? "c_fc" : "up_proj";
    case LinearKind::Down: return gpt2 ? "c_proj" : "down_proj";
  }
  return "?";
}

std::string input_site_name(InputSite site) {
  switch (site) {
    case InputSite::AttnIn: return "attn_in";
    case InputSite::AttnOut: return "attn_out";
    case InputSite::FfnIn: return "ffn_in";
    case InputSite::FfnHidden: return "ffn_hidden";
  }
  return "?";
}

const Tensor& linear_weight(const LayerWeights& w, LinearKind kind) {
  switch (kind) {
    case LinearKind::Q: return w.wq;
    case LinearKind::K: return w.wk;
    case LinearKind::V: return w.wv;
    case LinearKind::QKV: return w.w_qkv;
    case LinearKind::O: return w.wo;
    case LinearKind::Gate: return w.w_gate;
    case LinearKind::Up: return w.w_up;
    case LinearKind::Down: return w.w_down;
  }
  fail("unknown linear kind");
}
BiasRule bias_rule(const ModelConfig& c, LinearKind kind) {
  const BiasRules& r = family_of(c).biases;
  switch (kind) {
    case LinearKind::Q:
    case LinearKind::K:
    case LinearKind::V:
    case LinearKind::QKV: return r.qkv;
    case LinearKind::O: return r.o;
    case LinearKind::Gate:
    case LinearKind::Up:
    case LinearKind::Down: return r.mlp;
  }
  return BiasRule::Never;
}

bool can_have_bias(const ModelConfig& c, LinearKind kind) { return bias_rule(c, kind) != BiasRule::Never; }

Tensor& linear_weight(LayerWeights& w, LinearKind kind) {
  return const_cast<Tensor&>(linear_weight(static_cast<const LayerWeights&>(w), kind));
}

const Tensor& linear_bias(const LayerWeights& w, LinearKind kind) {
  switch (kind) {
    case LinearKind::Q: return w.bq;
    case LinearKind::K: return w.bk;
    case LinearKind::V: return w.bv;
    case LinearKind::QKV: return w.b_qkv;
    case LinearKind::O: return w.bo;
    case LinearKind::Gate: return w.b_gate;
    case LinearKind::Up: return w.b_up;
    case LinearKind::Down: return w.b_down;
  }
  fail("unknown linear kind");
}
Tensor& linear_bias(LayerWeights& w, LinearKind kind) {
  return const_cast<Tensor&>(linear_bias(static_cast<const LayerWeights&>(w), kind));
}

Tensor weight_out_in(const LinearLayer& l, const Tensor& stored) {
  if (l.conv1d) return transpose_f32(stored);
  return stored.dtype() == DType::F32 ? stored : stored.to_f32();
}

Tensor weight_to_stored(const LinearLayer& l, const Tensor& out_in) {
  QF_CHECK(out_in.ndim() == 2 && out_in.dim(0) == l.out_features && out_in.dim(1) == l.in_features,
           "{}: weight of shape {} given, expected [{}, {}]", l.name, shape_to_string(out_in.shape()),
           l.out_features, l.in_features);
  if (l.conv1d) return transpose_f32(out_in);
  return out_in.dtype() == DType::F32 ? out_in : out_in.to_f32();
}

}  // namespace qf::model
