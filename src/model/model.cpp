#include "model/model.h"


#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "model/arch/family.h"
#include "model/arch/fused_projections.h"
#include "formats/gguf_model.h"
#include "kernels/packed_matrix.h"

namespace qf::model {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Hands out tensors by name, checking shape and dtype, and remembers which
// ones were taken so that leftovers can be reported.
class TensorTable {
 public:
  TensorTable(const std::vector<formats::NamedTensor>& tensors, const std::set<std::string>& external,
              std::string prefix = "")
      : tensors_(tensors), external_(external), prefix_(std::move(prefix)) {
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto [it, inserted] = index_.emplace(tensors[i].name, i);
      QF_CHECK(inserted, "tensor \"{}\" appears more than once", tensors[i].name);
    }
  }

  const std::string& prefix() const { return prefix_; }

  // The tensor as F32 (a shared view when it already is F32).
  // An external name yields an empty tensor: its caller fills it in.
  Tensor take(const std::string& name, const Shape& expected) {
    if (external_.count(name)) return Tensor();
    const std::string full = prefix_ + name;
    const auto it = index_.find(full);
    QF_CHECK(it != index_.end(), "missing tensor \"{}\"", full);
    used_.insert(full);
    const Tensor& t = tensors_[it->second].tensor;
    QF_CHECK(t.shape() == expected, "tensor \"{}\" has shape {}, expected {}", full, shape_to_string(t.shape()),
             shape_to_string(expected));
    QF_CHECK(dtype_is_float(t.dtype()), "tensor \"{}\" has dtype {}, expected a float type", full,
             dtype_name(t.dtype()));
    return t.dtype() == DType::F32 ? t : t.to_f32();
  }

  // An optional tensor: empty when absent, else checked like take().
  Tensor take_optional(const std::string& name, const Shape& expected) {
    return index_.count(prefix_ + name) ? take(name, expected) : Tensor();
  }

  // Marks a tensor as deliberately unused (tied lm_head, buffers).
  void ignore(const std::string& full_name) { used_.insert(full_name); }

  void check_all_used(std::string_view arch) const {
    std::vector<std::string> left;
    for (const auto& t : tensors_)
      if (!used_.count(t.name)) left.push_back(t.name);
    if (left.empty()) return;
    std::string list;
    for (size_t i = 0; i < left.size() && i < 5; ++i) list += (i ? ", \"" : "\"") + left[i] + "\"";
    if (left.size() > 5) list += fmt::format(" and {} more", left.size() - 5);
    fail("{} unexpected tensor{} for the {} architecture: {}", left.size(), left.size() == 1 ? "" : "s", arch,
         list);
  }

 private:
  const std::vector<formats::NamedTensor>& tensors_;
  const std::set<std::string>& external_;
  std::string prefix_;
  std::unordered_map<std::string, size_t> index_;
  std::set<std::string> used_;
};

void build_llama(Model& m, TensorTable& t) {
  const ModelConfig& c = m.config;
  const BlockSpec& spec = block_spec(c);
  const int64_t h = c.hidden_size, v = c.vocab_size, ff = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  m.embed = t.take("model.embed_tokens.weight", {v, h});
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& L = m.layers[static_cast<size_t>(i)];
    const std::string p = fmt::format("model.layers.{}.", i);
    L.attn_norm = t.take(p + "input_layernorm.weight", {h});
    L.wq = t.take(p + "self_attn.q_proj.weight", {q, h});
    L.wk = t.take(p + "self_attn.k_proj.weight", {kv, h});
    L.wv = t.take(p + "self_attn.v_proj.weight", {kv, h});
    if (c.attention_bias) {
      L.bq = t.take(p + "self_attn.q_proj.bias", {q});
      L.bk = t.take(p + "self_attn.k_proj.bias", {kv});
      L.bv = t.take(p + "self_attn.v_proj.bias", {kv});
    }
    L.wo = t.take(p + "self_attn.o_proj.weight", {h, q});
    if (spec.qk_norm) {
      L.q_norm = t.take(p + "self_attn.q_norm.weight", {c.head_dim});
      L.k_norm = t.take(p + "self_attn.k_norm.weight", {c.head_dim});
    }
    if (spec.sandwich_norms) {
      L.attn_out_norm = t.take(p + "post_attention_layernorm.weight", {h});
      L.ffn_norm = t.take(p + "pre_feedforward_layernorm.weight", {h});
      L.ffn_out_norm = t.take(p + "post_feedforward_layernorm.weight", {h});
    } else {
      L.ffn_norm = t.take(p + "post_attention_layernorm.weight", {h});
    }
    L.w_gate = t.take(p + "mlp.gate_proj.weight", {ff, h});
    L.w_up = t.take(p + "mlp.up_proj.weight", {ff, h});
    L.w_down = t.take(p + "mlp.down_proj.weight", {h, ff});
    // Llama with attention_bias / mlp_bias, and bias-corrected quantized models.
    // o_proj.bias stays optional under attention_bias: older exports of
    // q/k/v-bias models have none.
    L.bo = t.take_optional(p + "self_attn.o_proj.bias", {h});
    if (c.mlp_bias) {
      L.b_gate = t.take(p + "mlp.gate_proj.bias", {ff});
      L.b_up = t.take(p + "mlp.up_proj.bias", {ff});
      L.b_down = t.take(p + "mlp.down_proj.bias", {h});
    } else {
      L.b_gate = t.take_optional(p + "mlp.gate_proj.bias", {ff});
      L.b_up = t.take_optional(p + "mlp.up_proj.bias", {ff});
      L.b_down = t.take_optional(p + "mlp.down_proj.bias", {h});
    }
    t.ignore(p + "self_attn.rotary_emb.inv_freq");
  }
  m.final_norm = t.take("model.norm.weight", {h});
  if (c.tie_embeddings) {
    m.lm_head = m.embed;
    t.ignore("lm_head.weight");
  } else {
    m.lm_head = t.take("lm_head.weight", {v, h});
  }
}

void build_gpt2(Model& m, TensorTable& t) {
  const ModelConfig& c = m.config;
  const int64_t h = c.hidden_size, v = c.vocab_size, ff = c.intermediate_size;
  m.embed = t.take("wte.weight", {v, h});
  m.pos_embed = t.take("wpe.weight", {c.max_positions, h});
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& L = m.layers[static_cast<size_t>(i)];
    const std::string p = fmt::format("h.{}.", i);
    L.attn_norm = t.take(p + "ln_1.weight", {h});
    L.attn_norm_bias = t.take(p + "ln_1.bias", {h});
    L.w_qkv = t.take(p + "attn.c_attn.weight", {h, 3 * h});
    L.b_qkv = t.take(p + "attn.c_attn.bias", {3 * h});
    L.wo = t.take(p + "attn.c_proj.weight", {h, h});
    L.bo = t.take(p + "attn.c_proj.bias", {h});
    L.ffn_norm = t.take(p + "ln_2.weight", {h});
    L.ffn_norm_bias = t.take(p + "ln_2.bias", {h});
    L.w_up = t.take(p + "mlp.c_fc.weight", {h, ff});
    L.b_up = t.take(p + "mlp.c_fc.bias", {ff});
    L.w_down = t.take(p + "mlp.c_proj.weight", {ff, h});
    L.b_down = t.take(p + "mlp.c_proj.bias", {h});
    // Causal-mask buffers some exports include.
    t.ignore(t.prefix() + p + "attn.bias");
    t.ignore(t.prefix() + p + "attn.masked_bias");
  }
  m.final_norm = t.take("ln_f.weight", {h});
  m.final_norm_bias = t.take("ln_f.bias", {h});
  // An untied head ("lm_head.weight", never prefixed) is taken by build_model.
}

}  // namespace

// The GGUF mapping owns the permutation (it keeps the dtype); the runtime wants F32.
Tensor interleaved_to_half_rope_rows(const Tensor& w, int64_t n_heads) {
  return formats::rope_rows_interleaved_to_half(w, n_heads).to_f32();
}
Tensor half_to_interleaved_rope_rows(const Tensor& w, int64_t n_heads) {
  return formats::rope_rows_half_to_interleaved(w, n_heads).to_f32();
}

Model build_model(ModelConfig config, const std::vector<formats::NamedTensor>& tensors, const std::string& source,
                  const std::set<std::string>& external) {
  return with_context(source, [&] {
    config.validate("");
    Model m;
    m.config = std::move(config);
    m.source = source;
    if (m.config.arch == Architecture::Llama) {
      // Phi-3's qkv_proj / gate_up_proj arrive fused; the model holds the parts.
      const std::vector<formats::NamedTensor> split = split_fused_projections(m.config, tensors);
      TensorTable t(split, external);
      build_llama(m, t);
      t.check_all_used(m.config.model_type);
    } else {
      // HF gpt2's model.safetensors has bare names; GPT2LMHeadModel saves "transformer.".
      const bool prefixed = std::any_of(tensors.begin(), tensors.end(), [](const formats::NamedTensor& nt) {
        return starts_with(nt.name, "transformer.");
      });
      TensorTable t(tensors, external, prefixed ? "transformer." : "");
      build_gpt2(m, t);
      if (!m.config.tie_embeddings) {
        TensorTable head(tensors, external);
        m.lm_head = head.take("lm_head.weight", {m.config.vocab_size, m.config.hidden_size});
      } else {
        m.lm_head = m.embed;
      }
      t.ignore("lm_head.weight");  // taken above, or ignored when tied as transformers does
      t.check_all_used("gpt2");
    }
    return m;
  });
}

std::vector<formats::NamedTensor> Model::named_tensors() const {
  std::vector<formats::NamedTensor> out;
  auto add = [&](std::string name, const Tensor& t) {
    if (!t.empty()) out.push_back({std::move(name), t});
  };
  if (config.arch == Architecture::Llama) {
    add("model.embed_tokens.weight", embed);
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerWeights& L = layers[i];
      const std::string p = fmt::format("model.layers.{}.", i);
      add(p + "input_layernorm.weight", L.attn_norm);
      add(p + "self_attn.q_proj.weight", L.wq);
      add(p + "self_attn.q_proj.bias", L.bq);
      add(p + "self_attn.k_proj.weight", L.wk);
      add(p + "self_attn.k_proj.bias", L.bk);
      add(p + "self_attn.v_proj.weight", L.wv);
      add(p + "self_attn.v_proj.bias", L.bv);
      add(p + "self_attn.o_proj.weight", L.wo);
      add(p + "self_attn.o_proj.bias", L.bo);
      add(p + "self_attn.q_norm.weight", L.q_norm);
      add(p + "self_attn.k_norm.weight", L.k_norm);
      if (L.attn_out_norm.empty()) {
        add(p + "post_attention_layernorm.weight", L.ffn_norm);
      } else {
        add(p + "post_attention_layernorm.weight", L.attn_out_norm);
        add(p + "pre_feedforward_layernorm.weight", L.ffn_norm);
        add(p + "post_feedforward_layernorm.weight", L.ffn_out_norm);
      }
      add(p + "mlp.gate_proj.weight", L.w_gate);
      add(p + "mlp.gate_proj.bias", L.b_gate);
      add(p + "mlp.up_proj.weight", L.w_up);
      add(p + "mlp.up_proj.bias", L.b_up);
      add(p + "mlp.down_proj.weight", L.w_down);
      add(p + "mlp.down_proj.bias", L.b_down);
    }
    add("model.norm.weight", final_norm);
  } else {
    add("wte.weight", embed);
    add("wpe.weight", pos_embed);
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerWeights& L = layers[i];
      const std::string p = fmt::format("h.{}.", i);
      add(p + "ln_1.weight", L.attn_norm);
      add(p + "ln_1.bias", L.attn_norm_bias);
      add(p + "attn.c_attn.weight", L.w_qkv);
      add(p + "attn.c_attn.bias", L.b_qkv);
      add(p + "attn.c_proj.weight", L.wo);
      add(p + "attn.c_proj.bias", L.bo);
      add(p + "ln_2.weight", L.ffn_norm);
      add(p + "ln_2.bias", L.ffn_norm_bias);
      add(p + "mlp.c_fc.weight", L.w_up);
      add(p + "mlp.c_fc.bias", L.b_up);
      add(p + "mlp.c_proj.weight", L.w_down);
      add(p + "mlp.c_proj.bias", L.b_down);
    }
    add("ln_f.weight", final_norm);
    add("ln_f.bias", final_norm_bias);
  }
  if (!config.tie_embeddings) add("lm_head.weight", lm_head);
  return out;
}

bool has_online_transforms(const Model& model) {
  for (const LayerWeights& L : model.layers)
    for (const InputTransform& t : L.transform)
      if (t.active()) return true;
  return false;
}

void require_no_online_transforms(const Model& model, const std::string& target) {
  QF_CHECK(!has_online_transforms(model),
           "{} cannot express the online Hadamard transforms of a rotated model (--rotate hadamard); write --format "
           "qforge, or rotate with --rotate hadamard-offline (no online transform)",
           target);
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for (const auto& t : named_tensors()) n += t.tensor.numel();
  for (const LayerWeights& L : layers)
    for (const auto& p : L.packed)
      if (p) n += p->rows() * p->cols();
  for (const auto* p : {lm_head_packed.get(), embed_packed.get()})
    if (p) n += p->rows() * p->cols();
  if (lm_head_packed && lm_head_packed == embed_packed) n -= lm_head_packed->rows() * lm_head_packed->cols();
  return n;
}

uint64_t Model::packed_bytes() const {
  // A tied head may share the embedding's packed table: count it once.
  uint64_t n = (lm_head_packed ? lm_head_packed->bytes() : 0) +
               (embed_packed && embed_packed != lm_head_packed ? embed_packed->bytes() : 0);
  for (const LayerWeights& L : layers)
    for (const auto& p : L.packed)
      if (p) n += p->bytes();
  return n;
}

uint64_t Model::weight_bytes() const {
  uint64_t n = packed_bytes();
  for (const auto& t : named_tensors()) n += t.tensor.nbytes();
  return n;
}

}  // namespace qf::model
