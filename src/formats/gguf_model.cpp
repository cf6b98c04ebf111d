#include "formats/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "formats/gguf_quants.h"
#include "formats/strict_json.h"
#include "model/arch/family.h"
#include "model/arch/fused_projections.h"
#include "model/arch/hf_keys.h"
#include "model/rope.h"

namespace qf::formats {
namespace {

using model::Architecture;
using model::ModelConfig;
using tokenizer::TokenType;
using tokenizer::Vocab;
using tokenizer::VocabKind;

// ---------------------------------------------------------------------------
// Tensor name and shape tables

// NormPlusOne: Gemma's norms hold offsets from 1 in HF and the full weight in
// GGUF (llama.cpp's converter adds 1; its graph multiplies plainly).
enum class Transform { None, PermuteQ, PermuteK, Transpose, NormPlusOne };
// Symbolic dimensions of the HF shapes.
enum class Dim { None, Hidden, QDim, KvDim, Inter, Vocab, Positions, Hidden3, HeadDim, QkvDim, Inter2 };
// When a tensor must be present.
enum class Need { Always, IfAttentionBias, IfUntied, IfQkNorm, Optional };

struct Rule {
  std::string_view hf;    // full name (global) or the part after "<layer prefix>N."
  std::string_view gguf;  // likewise, after "blk.N."
  Transform transform;
  Dim d0, d1;  // HF row-major shape; d1 None for 1-D
  Need need;
};

constexpr Rule kLlamaGlobal[] = {
    {"model.embed_tokens.weight", "token_embd.weight", Transform::None, Dim::Vocab, Dim::Hidden, Need::Always},
    {"model.norm.weight", "output_norm.weight", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"lm_head.weight", "output.weight", Transform::None, Dim::Vocab, Dim::Hidden, Need::IfUntied},
};

constexpr Rule kLlamaLayer[] = {
    {"input_layernorm.weight", "attn_norm.weight", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"self_attn.q_proj.weight", "attn_q.weight", Transform::PermuteQ, Dim::QDim, Dim::Hidden, Need::Always},
    {"self_attn.q_proj.bias", "attn_q.bias", Transform::PermuteQ, Dim::QDim, Dim::None, Need::IfAttentionBias},
    {"self_attn.k_proj.weight", "attn_k.weight", Transform::PermuteK, Dim::KvDim, Dim::Hidden, Need::Always},
    {"self_attn.k_proj.bias", "attn_k.bias", Transform::PermuteK, Dim::KvDim, Dim::None, Need::IfAttentionBias},
    {"self_attn.v_proj.weight", "attn_v.weight", Transform::None, Dim::KvDim, Dim::Hidden, Need::Always},
    {"self_attn.v_proj.bias", "attn_v.bias", Transform::None, Dim::KvDim, Dim::None, Need::IfAttentionBias},
    {"self_attn.o_proj.weight", "attn_output.weight", Transform::None, Dim::Hidden, Dim::QDim, Need::Always},
    {"self_attn.o_proj.bias", "attn_output.bias", Transform::None, Dim::Hidden, Dim::None, Need::Optional},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", Transform::None, Dim::HeadDim, Dim::None, Need::IfQkNorm},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", Transform::None, Dim::HeadDim, Dim::None, Need::IfQkNorm},
    {"post_attention_layernorm.weight", "ffn_norm.weight", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"mlp.gate_proj.weight", "ffn_gate.weight", Transform::None, Dim::Inter, Dim::Hidden, Need::Always},
    {"mlp.gate_proj.bias", "ffn_gate.bias", Transform::None, Dim::Inter, Dim::None, Need::Optional},
    {"mlp.up_proj.weight", "ffn_up.weight", Transform::None, Dim::Inter, Dim::Hidden, Need::Always},
    {"mlp.up_proj.bias", "ffn_up.bias", Transform::None, Dim::Inter, Dim::None, Need::Optional},
    {"mlp.down_proj.weight", "ffn_down.weight", Transform::None, Dim::Hidden, Dim::Inter, Need::Always},
    {"mlp.down_proj.bias", "ffn_down.bias", Transform::None, Dim::Hidden, Dim::None, Need::Optional},
};

// Gemma 3: (1 + w) norms everywhere, sandwich norms, q/k norms, no biases.
constexpr Rule kGemma3Global[] = {
    {"model.embed_tokens.weight", "token_embd.weight", Transform::None, Dim::Vocab, Dim::Hidden, Need::Always},
    {"model.norm.weight", "output_norm.weight", Transform::NormPlusOne, Dim::Hidden, Dim::None, Need::Always},
    {"lm_head.weight", "output.weight", Transform::None, Dim::Vocab, Dim::Hidden, Need::IfUntied},
};

constexpr Rule kGemma3Layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", Transform::NormPlusOne, Dim::Hidden, Dim::None, Need::Always},
    {"self_attn.q_proj.weight", "attn_q.weight", Transform::None, Dim::QDim, Dim::Hidden, Need::Always},
    {"self_attn.k_proj.weight", "attn_k.weight", Transform::None, Dim::KvDim, Dim::Hidden, Need::Always},
    {"self_attn.v_proj.weight", "attn_v.weight", Transform::None, Dim::KvDim, Dim::Hidden, Need::Always},
    {"self_attn.o_proj.weight", "attn_output.weight", Transform::None, Dim::Hidden, Dim::QDim, Need::Always},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", Transform::NormPlusOne, Dim::HeadDim, Dim::None, Need::Always},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", Transform::NormPlusOne, Dim::HeadDim, Dim::None, Need::Always},
    {"post_attention_layernorm.weight", "post_attention_norm.weight", Transform::NormPlusOne, Dim::Hidden, Dim::None,
     Need::Always},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight", Transform::NormPlusOne, Dim::Hidden, Dim::None,
     Need::Always},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight", Transform::NormPlusOne, Dim::Hidden, Dim::None,
     Need::Always},
    {"mlp.gate_proj.weight", "ffn_gate.weight", Transform::None, Dim::Inter, Dim::Hidden, Need::Always},
    {"mlp.up_proj.weight", "ffn_up.weight", Transform::None, Dim::Inter, Dim::Hidden, Need::Always},
    {"mlp.down_proj.weight", "ffn_down.weight", Transform::None, Dim::Hidden, Dim::Inter, Need::Always},
};

// Phi-3: q | k | v in one attn_qkv, gate | up in one ffn_up of 2 n_ff rows
// (llama.cpp's fused SwiGLU takes the first half as the gate), NEOX RoPE.
// The HF side names the fused tensors; the writer fuses a Model's parts
// first and build_model splits them again (model/arch/fused_projections.h).
constexpr Rule kPhi3Layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"self_attn.qkv_proj.weight", "attn_qkv.weight", Transform::None, Dim::QkvDim, Dim::Hidden, Need::Always},
    {"self_attn.o_proj.weight", "attn_output.weight", Transform::None, Dim::Hidden, Dim::QDim, Need::Always},
    {"post_attention_layernorm.weight", "ffn_norm.weight", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"mlp.gate_up_proj.weight", "ffn_up.weight", Transform::None, Dim::Inter2, Dim::Hidden, Need::Always},
    {"mlp.down_proj.weight", "ffn_down.weight", Transform::None, Dim::Hidden, Dim::Inter, Need::Always},
};

constexpr Rule kGpt2Global[] = {
    {"transformer.wte.weight", "token_embd.weight", Transform::None, Dim::Vocab, Dim::Hidden, Need::Always},
    {"transformer.wpe.weight", "position_embd.weight", Transform::None, Dim::Positions, Dim::Hidden, Need::Always},
    {"transformer.ln_f.weight", "output_norm.weight", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"transformer.ln_f.bias", "output_norm.bias", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"lm_head.weight", "output.weight", Transform::None, Dim::Vocab, Dim::Hidden, Need::IfUntied},
};

// HF GPT-2 Conv1D weights are [in, out]; GGUF stores them [out, in].
constexpr Rule kGpt2Layer[] = {
    {"ln_1.weight", "attn_norm.weight", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"ln_1.bias", "attn_norm.bias", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"attn.c_attn.weight", "attn_qkv.weight", Transform::Transpose, Dim::Hidden, Dim::Hidden3, Need::Always},
    {"attn.c_attn.bias", "attn_qkv.bias", Transform::None, Dim::Hidden3, Dim::None, Need::Always},
    {"attn.c_proj.weight", "attn_output.weight", Transform::Transpose, Dim::Hidden, Dim::Hidden, Need::Always},
    {"attn.c_proj.bias", "attn_output.bias", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"ln_2.weight", "ffn_norm.weight", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"ln_2.bias", "ffn_norm.bias", Transform::None, Dim::Hidden, Dim::None, Need::Always},
    {"mlp.c_fc.weight", "ffn_up.weight", Transform::Transpose, Dim::Hidden, Dim::Inter, Need::Always},
    {"mlp.c_fc.bias", "ffn_up.bias", Transform::None, Dim::Inter, Dim::None, Need::Always},
    {"mlp.c_proj.weight", "ffn_down.weight", Transform::Transpose, Dim::Inter, Dim::Hidden, Need::Always},
    {"mlp.c_proj.bias", "ffn_down.bias", Transform::None, Dim::Hidden, Dim::None, Need::Always},
};

// Buffers some HF checkpoints carry that are not weights.
constexpr std::string_view kLlamaIgnoredLayer[] = {"self_attn.rotary_emb.inv_freq"};
constexpr std::string_view kGpt2IgnoredLayer[] = {"attn.bias", "attn.masked_bias"};

constexpr std::string_view kGgufLayerPrefix = "blk.";
// Generated from the config's rope_scaling, not HF weights: llama3's
// frequency divisors, longrope's short and long factor sets.
constexpr std::string_view kRopeFreqs = "rope_freqs.weight";
constexpr std::string_view kRopeFactorsShort = "rope_factors_short.weight";
constexpr std::string_view kRopeFactorsLong = "rope_factors_long.weight";

struct Tables {
  std::span<const Rule> global, layer;
  std::string_view hf_layer_prefix;
  std::span<const std::string_view> ignored_layer;
};

Tables tables_for(Architecture arch, const model::BlockSpec& spec = {}, bool fused = false) {
  if (arch == Architecture::GPT2) return {kGpt2Global, kGpt2Layer, "transformer.h.", kGpt2IgnoredLayer};
  if (spec.sandwich_norms) return {kGemma3Global, kGemma3Layer, "model.layers.", kLlamaIgnoredLayer};
  if (fused) return {kLlamaGlobal, kPhi3Layer, "model.layers.", kLlamaIgnoredLayer};
  return {kLlamaGlobal, kLlamaLayer, "model.layers.", kLlamaIgnoredLayer};
}

Tables tables_for(const ModelConfig& c) {
  return tables_for(c.arch, model::block_spec(c), !model::fused_projections(c).empty());
}

struct Resolved {
  const Rule* rule = nullptr;
  int64_t layer = -1;  // -1: not a per-layer tensor
};

// "12.rest" -> (12, "rest"); nullopt unless a canonical decimal (no sign, no
// leading zero) of at most 9 digits is followed by a dot.
std::optional<std::pair<int64_t, std::string_view>> split_layer(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && n < 10 && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0 || n > 9 || n >= s.size() || s[n] != '.' || (n > 1 && s[0] == '0')) return std::nullopt;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v * 10 + (s[i] - '0');
  return std::pair{v, s.substr(n + 1)};
}

enum class Side { Hf, Gguf };

std::optional<Resolved> resolve(std::string_view name, const Tables& t, Side side, bool* ignored = nullptr) {
  if (ignored) *ignored = false;
  for (const Rule& r : t.global)
    if ((side == Side::Hf ? r.hf : r.gguf) == name) return Resolved{&r, -1};
  const std::string_view prefix = side == Side::Hf ? t.hf_layer_prefix : kGgufLayerPrefix;
  if (!name.starts_with(prefix)) return std::nullopt;
  const auto split = split_layer(name.substr(prefix.size()));
  if (!split) return std::nullopt;
  for (const Rule& r : t.layer)
    if ((side == Side::Hf ? r.hf : r.gguf) == split->second) return Resolved{&r, split->first};
  if (side == Side::Hf && ignored)
    for (std::string_view s : t.ignored_layer)
      if (s == split->second) *ignored = true;
  return std::nullopt;
}

std::string full_name(const Rule& r, int64_t layer, Side side, const Tables& t) {
  const std::string_view base = side == Side::Hf ? r.hf : r.gguf;
  if (layer < 0) return std::string(base);
  return fmt::format("{}{}.{}", side == Side::Hf ? t.hf_layer_prefix : kGgufLayerPrefix, layer, base);
}

// GPT-2 names may come without the "transformer." prefix (the Hub's
// safetensors files); lm_head never has it.
std::string normalize_hf(const std::string& name, Architecture arch) {
  if (arch == Architecture::GPT2 && !name.starts_with("transformer.") && name != "lm_head.weight")
    return "transformer." + name;
  return name;
}

int64_t dim_value(Dim d, const ModelConfig& c) {
  switch (d) {
    case Dim::None: return 0;
    case Dim::Hidden: return c.hidden_size;
    case Dim::QDim: return c.n_heads * c.head_dim;
    case Dim::KvDim: return c.n_kv_heads * c.head_dim;
    case Dim::Inter: return c.intermediate_size;
    case Dim::Vocab: return c.vocab_size;
    case Dim::Positions: return c.max_positions;
    case Dim::Hidden3: return 3 * c.hidden_size;
    case Dim::HeadDim: return c.head_dim;
    case Dim::QkvDim: return (c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
    case Dim::Inter2: return 2 * c.intermediate_size;
  }
  return 0;
}

Shape hf_shape(const Rule& r, const ModelConfig& c) {
  if (r.d1 == Dim::None) return {dim_value(r.d0, c)};
  return {dim_value(r.d0, c), dim_value(r.d1, c)};
}

Shape gguf_shape(const Rule& r, const ModelConfig& c) {
  Shape s = hf_shape(r, c);
  if (r.transform == Transform::Transpose) std::reverse(s.begin(), s.end());
  return s;
}

bool required(const Rule& r, const ModelConfig& c) {
  switch (r.need) {
    case Need::Always: return true;
    case Need::IfAttentionBias: return c.attention_bias;
    case Need::IfUntied: return !c.tie_embeddings;
    case Need::IfQkNorm: return model::block_spec(c).qk_norm;
    case Need::Optional: return false;
  }
  return false;
}

// Whether q/k rows are permuted between HF and GGUF for this config.
// llama.cpp's "llama" graph rotates interleaved pairs (its converter permutes
// HF's rotate_half rows); the NEOX-style graphs (qwen2, qwen3, gemma3) keep them.
bool permutes(const ModelConfig& c) { return model::family_of(c).gguf_arch == "llama"; }

Tensor transpose_2d(const Tensor& w) {
  const int64_t a = w.dim(0), b = w.dim(1);
  const size_t es = dtype_size(w.dtype());
  Tensor out = Tensor::zeros(w.dtype(), {b, a});
  const std::byte* src = w.bytes();
  std::byte* dst = out.mutable_bytes();
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < a; r0 += kTile)
    for (int64_t c0 = 0; c0 < b; c0 += kTile)
      for (int64_t r = r0; r < std::min(a, r0 + kTile); ++r)
        for (int64_t c = c0; c < std::min(b, c0 + kTile); ++c)
          std::memcpy(dst + (c * a + r) * es, src + (r * b + c) * es, es);
  return out;
}

Tensor permute_rope_rows(const Tensor& w, int64_t n_heads, bool to_interleaved) {
  QF_CHECK(w.ndim() == 1 || w.ndim() == 2, "RoPE row permutation expects a matrix or a bias, got shape {}",
           shape_to_string(w.shape()));
  const int64_t rows = w.dim(0);
  QF_CHECK(n_heads > 0 && rows % n_heads == 0 && (rows / n_heads) % 2 == 0,
           "RoPE row permutation: {} rows do not split into {} heads of even size", rows, n_heads);
  const size_t row_bytes = static_cast<size_t>(w.ndim() == 2 ? w.dim(1) : 1) * dtype_size(w.dtype());
  Tensor out = Tensor::zeros(w.dtype(), w.shape());
  const std::byte* src = w.bytes();
  std::byte* dst = out.mutable_bytes();
  const int64_t head_dim = rows / n_heads, half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t interleaved = h * head_dim + 2 * i + j;
        const int64_t rotate_half = h * head_dim + j * half + i;
        const int64_t from = to_interleaved ? rotate_half : interleaved;
        const int64_t to = to_interleaved ? interleaved : rotate_half;
        std::memcpy(dst + to * row_bytes, src + from * row_bytes, row_bytes);
      }
    }
  }
  return out;
}

// HF layout -> GGUF layout (forward) or back.
Tensor apply(const Rule& r, const Tensor& t, const ModelConfig& c, bool forward) {
  switch (r.transform) {
    case Transform::None: return t;
    case Transform::PermuteQ:
      return permutes(c) ? permute_rope_rows(t, c.n_heads, forward) : t;
    case Transform::PermuteK:
      return permutes(c) ? permute_rope_rows(t, c.n_kv_heads, forward) : t;
    case Transform::Transpose: return transpose_2d(t);
    case Transform::NormPlusOne: {
      Tensor out = t.to_f32().clone();
      float* d = out.mutable_data<float>();
      for (int64_t i = 0; i < out.numel(); ++i) d[i] = forward ? d[i] + 1.0f : d[i] - 1.0f;
      return out;
    }
  }
  return t;
}

// ---------------------------------------------------------------------------
// Metadata

uint32_t as_u32(int64_t v, std::string_view what) {
  QF_CHECK(v >= 0 && v <= static_cast<int64_t>(std::numeric_limits<uint32_t>::max()),
           "{} {} does not fit a GGUF uint32", what, v);
  return static_cast<uint32_t>(v);
}

GgufFileType file_type_for(DType dtype) {
  switch (dtype) {
    case DType::F32: return GgufFileType::AllF32;
    case DType::F16: return GgufFileType::MostlyF16;
    case DType::BF16: return GgufFileType::MostlyBF16;
    default: fail("GGUF model output dtype must be F32, F16 or BF16, got {}", dtype_name(dtype));
  }
}

void add_vocab(GgufMetadata& m, const Vocab& vocab, const ModelConfig& c, const std::string& arch) {
  const size_t n = vocab.tokens.size();
  QF_CHECK(n > 0, "vocab has no tokens");
  QF_CHECK(vocab.scores.empty() || vocab.scores.size() == n, "vocab has {} tokens but {} scores", n,
           vocab.scores.size());
  QF_CHECK(vocab.types.empty() || vocab.types.size() == n, "vocab has {} tokens but {} token types", n,
           vocab.types.size());
  QF_CHECK(static_cast<int64_t>(n) <= c.vocab_size, "vocab has {} tokens, more than the model's vocab_size {}", n,
           c.vocab_size);
  const bool spm = vocab.kind == VocabKind::SentencePiece;
  std::vector<std::string> tokens = vocab.tokens;
  std::vector<float> scores = vocab.scores;
  std::vector<int32_t> types;
  types.reserve(vocab.types.size());
  for (const TokenType t : vocab.types) types.push_back(static_cast<int32_t>(t));
  // llama.cpp needs one token per embedding row.
  for (auto id = static_cast<int64_t>(n); id < c.vocab_size; ++id) {
    tokens.push_back(fmt::format("[PAD{}]", id));
    if (!scores.empty()) scores.push_back(-1000.0f);
    if (!types.empty()) types.push_back(static_cast<int32_t>(TokenType::Unused));
  }
  m.add("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  if (spm)
    m.add("tokenizer.ggml.pre", "default");
  else if (arch == "gpt2")
    m.add("tokenizer.ggml.pre", "gpt-2");
  else if (arch == "qwen2" || arch == "qwen3")
    m.add("tokenizer.ggml.pre", "qwen2");
  m.add("tokenizer.ggml.tokens", std::move(tokens));
  if (!scores.empty()) m.add("tokenizer.ggml.scores", std::move(scores));
  if (!types.empty()) m.add("tokenizer.ggml.token_type", std::move(types));
  if (!vocab.merges.empty()) m.add("tokenizer.ggml.merges", vocab.merges);
  const std::pair<const char*, int32_t> ids[] = {{"bos_token_id", vocab.bos_id},
                                                 {"eos_token_id", vocab.eos_id},
                                                 {"unknown_token_id", vocab.unk_id},
                                                 {"padding_token_id", vocab.pad_id}};
  for (const auto& [key, id] : ids) {
    if (id < 0) continue;
    QF_CHECK(static_cast<size_t>(id) < n, "vocab {} {} is not a token id (the vocab has {} tokens)", key, id, n);
    m.add(fmt::format("tokenizer.ggml.{}", key), static_cast<uint32_t>(id));
  }
  m.add("tokenizer.ggml.add_bos_token", vocab.add_bos);
  m.add("tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);
  m.add("tokenizer.ggml.remove_extra_whitespaces", vocab.remove_extra_whitespaces);
}

// An integer key as a positive-or-zero int64.
int64_t get_count(const GgufMetadata& m, const std::string& key) {
  const uint64_t v = m.get_uint(key);
  QF_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "metadata key {} is {}, too large",
           quote(key), v);
  return static_cast<int64_t>(v);
}

int32_t get_token_id(const GgufMetadata& m, const std::string& key) {
  if (!m.contains(key)) return -1;
  const uint64_t v = m.get_uint(key);
  QF_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()), "metadata key {} is {}, not a token id",
           quote(key), v);
  return static_cast<int32_t>(v);
}

bool shape_equal(const Shape& a, const Shape& b) { return a == b; }

// Stored F32 factors as the shortest decimals that read back to them (1.05, not 1.0499999523).
nlohmann::json factor_list(const std::vector<float>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (float v : values) out.push_back(model::hf::float_json(v));
  return out;
}

}  // namespace

Tensor rope_rows_half_to_interleaved(const Tensor& w, int64_t n_heads) { return permute_rope_rows(w, n_heads, true); }
Tensor rope_rows_interleaved_to_half(const Tensor& w, int64_t n_heads) { return permute_rope_rows(w, n_heads, false); }

std::string gguf_architecture(const ModelConfig& config) {
  const model::Family& f = model::family_of(config);
  if (f.gguf_arch.empty()) {
    std::string list;
    for (const model::Family* g : model::families())
      if (!g->gguf_arch.empty()) list += (list.empty() ? "" : ", ") + std::string(g->model_type);
    fail("model_type \"{}\" has no GGUF architecture (supported: {})", config.model_type, list);
  }
  return std::string(f.gguf_arch);
}

std::optional<std::string> hf_to_gguf_tensor_name(const std::string& hf_name, Architecture arch) {
  const Tables t = tables_for(arch);
  const auto r = resolve(normalize_hf(hf_name, arch), t, Side::Hf);
  if (!r) return std::nullopt;
  return full_name(*r->rule, r->layer, Side::Gguf, t);
}

std::optional<std::string> gguf_to_hf_tensor_name(const std::string& gguf_name, Architecture arch) {
  const Tables t = tables_for(arch);
  const auto r = resolve(gguf_name, t, Side::Gguf);
  if (!r) return std::nullopt;
  return full_name(*r->rule, r->layer, Side::Hf, t);
}

namespace {

// What llama.cpp's graph for `arch` can express of a config: refused, naming
// the setting, rather than written into a file llama.cpp would misread.
void check_gguf_representable(const ModelConfig& c, const std::string& arch) {
  const std::string rope = model::rope_type_of(c.rope_scaling);
  QF_CHECK(rope == "default" || rope == "linear" ||
               (rope == "yarn" && !c.rope_scaling.contains("attention_factor") && !c.rope_scaling.contains("mscale")) ||
               (rope == "llama3" && arch == "llama") || (rope == "longrope" && arch == "phi3"),
           "rope_scaling {} cannot be written to GGUF {} (llama.cpp reads none, linear and plain yarn scaling, "
           "llama3's as per-frequency divisors for llama and longrope's factor sets for phi3)",
           c.rope_scaling.dump(), arch);
  if (arch != "gemma3") return;
  // llama.cpp's gemma3 fixes these: a global layer every sixth, the local
  // layers' RoPE base 10000, scores scaled by 1/sqrt(head_dim), no final soft-cap.
  for (int64_t l = 0; l < c.n_layers; ++l)
    QF_CHECK(c.layer_is_sliding(l) == ((l + 1) % 6 != 0),
             "gemma3 GGUF needs the sliding-window layer pattern llama.cpp assumes (every sixth layer global); "
             "layer {} differs",
             l);
  QF_CHECK(c.rope_local_theta == 10000.0f, "gemma3 GGUF needs a local RoPE base of 10000, got {}", c.rope_local_theta);
  QF_CHECK(c.query_pre_attn_scalar == static_cast<float>(c.head_dim),
           "gemma3 GGUF needs query_pre_attn_scalar == head_dim ({}), got {}", c.head_dim, c.query_pre_attn_scalar);
  QF_CHECK(c.final_softcap == 0, "gemma3 GGUF has no final logit soft-capping (config has {})", c.final_softcap);
}

}  // namespace

GgufMetadata gguf_model_metadata(const ModelConfig& c, const Vocab* vocab, DType dtype, const std::string& name) {
  const std::string arch = gguf_architecture(c);
  check_gguf_representable(c, arch);
  GgufMetadata m;
  m.add("general.architecture", arch);
  m.add("general.name", name);
  m.add("general.file_type", static_cast<uint32_t>(file_type_for(dtype)));
  m.add("general.quantization_version", uint32_t{2});
  auto key = [&](std::string_view k) { return fmt::format("{}.{}", arch, k); };
  m.add(key("context_length"), as_u32(c.max_positions, "max_positions"));
  m.add(key("embedding_length"), as_u32(c.hidden_size, "hidden_size"));
  m.add(key("block_count"), as_u32(c.n_layers, "n_layers"));
  m.add(key("feed_forward_length"), as_u32(c.intermediate_size, "intermediate_size"));
  m.add(key("attention.head_count"), as_u32(c.n_heads, "n_heads"));
  m.add(key("attention.head_count_kv"), as_u32(c.n_kv_heads, "n_kv_heads"));
  if (c.arch == Architecture::GPT2) {
    m.add(key("attention.layer_norm_epsilon"), c.norm_eps);
  } else {
    m.add(key("attention.layer_norm_rms_epsilon"), c.norm_eps);
    m.add(key("rope.freq_base"), c.rope_theta);
    m.add(key("rope.dimension_count"), as_u32(c.head_dim, "head_dim"));
    if (c.n_heads * c.head_dim != c.hidden_size) {
      m.add(key("attention.key_length"), as_u32(c.head_dim, "head_dim"));
      m.add(key("attention.value_length"), as_u32(c.head_dim, "head_dim"));
    }
    // Phi-3: always, 0 for none, as llama.cpp's converter writes it (llama.cpp
    // runs phi3 without the window for now, so logits agree within it).
    if (c.sliding_window > 0 || arch == "phi3")
      m.add(key("attention.sliding_window"), as_u32(c.sliding_window, "sliding_window"));
    const std::string rope = model::rope_type_of(c.rope_scaling);
    if (arch == "phi3") {
      const bool longrope = rope == "longrope";
      m.add(key("rope.scaling.original_context_length"),
            as_u32(longrope ? c.rope_scaling.at("original_max_position_embeddings").get<int64_t>() : c.max_positions,
                   "original_max_position_embeddings"));
      if (longrope)  // the factor sets are the rope_factors_* tensors
        m.add(key("rope.scaling.attn_factor"), static_cast<float>(model::longrope_attention_factor(c)));
    } else if (rope != "default" && rope != "llama3") {  // llama3: the rope_freqs tensor
      m.add(key("rope.scaling.type"), rope);
      m.add(key("rope.scaling.factor"), static_cast<float>(c.rope_scaling.value("factor", 1.0)));
      if (rope == "yarn")
        m.add(key("rope.scaling.original_context_length"),
              as_u32(c.rope_scaling.value("original_max_position_embeddings", c.max_positions),
                     "original_max_position_embeddings"));
    }
  }
  m.add(key("vocab_size"), as_u32(c.vocab_size, "vocab_size"));
  if (vocab) {
    add_vocab(m, *vocab, c, arch);
  } else {
    if (c.bos_token_id >= 0) m.add("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(c.bos_token_id));
    if (c.eos_token_id >= 0) m.add("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(c.eos_token_id));
  }
  return m;
}

namespace {

// One tensor of the file and the HF tensors it is made of: one, or a fused
// projection's parts (Phi-3's q, k, v for attn_qkv), stacked only when written.
struct Source {
  std::string hf_name;
  std::vector<const NamedTensor*> parts;
  Shape shape() const {
    Shape s = parts.front()->tensor.shape();
    for (size_t i = 1; i < parts.size(); ++i) s[0] += parts[i]->tensor.dim(0);
    return s;
  }
  Tensor tensor() const {
    if (parts.size() == 1) return parts.front()->tensor;
    bool one_dtype = true;
    for (const NamedTensor* p : parts) one_dtype = one_dtype && p->tensor.dtype() == parts.front()->tensor.dtype();
    std::vector<Tensor> ts;
    for (const NamedTensor* p : parts) ts.push_back(one_dtype ? p->tensor : p->tensor.to_f32());
    return concat_rows(ts);
  }
};

// The model's tensors grouped as the file stores them.
std::vector<Source> sources_of(const ModelConfig& c, std::span<const NamedTensor> hf_tensors) {
  std::vector<Source> out;
  std::map<std::string, size_t> fused;  // fused HF name -> index in out
  for (const NamedTensor& nt : hf_tensors) {
    const auto loc = model::fused_location(c, nt.name);
    if (!loc) {
      out.push_back({nt.name, {&nt}});
      continue;
    }
    auto [it, fresh] = fused.emplace(loc->fused_name, out.size());
    if (fresh) out.push_back({loc->fused_name, {}});
    out[it->second].parts.push_back(&nt);
  }
  // Parts in the fused tensor's row order, each with its own shape.
  for (Source& src : out) {
    if (src.parts.size() == 1 && src.parts.front()->name == src.hf_name) continue;
    std::sort(src.parts.begin(), src.parts.end(), [&](const NamedTensor* a, const NamedTensor* b) {
      return model::fused_location(c, a->name)->first_row < model::fused_location(c, b->name)->first_row;
    });
    int64_t row = 0;
    for (const NamedTensor* p : src.parts) {
      const auto loc = model::fused_location(c, p->name);
      QF_CHECK(loc->first_row == row, "{} stores {} fused as {}: a part is missing before {}", c.model_type,
               quote(p->name), quote(src.hf_name), quote(p->name));
      QF_CHECK(p->tensor.ndim() == 2 && p->tensor.dim(1) == c.hidden_size, "tensor {} has shape {}, expected [rows, {}]",
               quote(p->name), shape_to_string(p->tensor.shape()), c.hidden_size);
      row += p->tensor.dim(0);
    }
  }
  return out;
}

// Pre-encoded blocks of a source: its own, or its parts' stacked (all of one
// type); nullopt when it has none.
std::optional<GgufBlocks> source_blocks(const Source& src, const GgufModelWriteOptions& options) {
  std::vector<Tensor> rows;
  std::optional<GgmlType> type;
  for (const NamedTensor* p : src.parts) {
    const auto b = options.blocks.find(p->name);
    if (b == options.blocks.end()) continue;
    QF_CHECK(!type || *type == b->second.type, "{} and its other parts are pre-encoded as different block types",
             quote(p->name));
    type = b->second.type;
    rows.push_back(b->second.rows);
  }
  if (!type) return std::nullopt;
  QF_CHECK(rows.size() == src.parts.size(), "{}: some of its parts are pre-encoded blocks and some are not",
           quote(src.hf_name));
  return GgufBlocks{*type, rows.size() == 1 ? rows.front() : concat_rows(rows)};
}

struct Planned {
  const Rule* rule;
  const Source* source;
  GgufTensorType type;
};

// Resolves, validates and types every tensor; `planned` in input order.
std::vector<Planned> plan_model(const ModelConfig& config, std::span<const Source> sources,
                                const GgufModelWriteOptions& options) {
  config.validate("");
  const Tables t = tables_for(config);
  const GgufRecipeContext context{config.n_layers, config.n_kv_heads > 0 ? config.n_heads / config.n_kv_heads : 1,
                                  config.tie_embeddings, !options.importance.empty()};
  std::vector<Planned> planned;
  std::map<std::string, std::string> written;  // GGUF name -> HF name
  for (const Source& src : sources) {
    const std::string& hf_name = src.hf_name;
    bool ignored = false;
    const auto r = resolve(normalize_hf(hf_name, config.arch), t, Side::Hf, &ignored);
    if (ignored) continue;
    if (!r) fail("tensor {} is not a known {} weight name", quote(hf_name), gguf_architecture(config));
    if (r->rule->need == Need::IfUntied && config.tie_embeddings) continue;  // tied: output falls back to token_embd
    QF_CHECK(r->layer < config.n_layers, "tensor {} is in layer {} but the model has {} layers", quote(hf_name),
             r->layer, config.n_layers);
    if (r->rule->need == Need::IfAttentionBias && !config.attention_bias)
      fail("tensor {} is a q/k/v bias but the config says attention_bias is false", quote(hf_name));
    const Shape expected = hf_shape(*r->rule, config);
    QF_CHECK(src.shape() == expected, "tensor {} has shape {}, expected {} for this config", quote(hf_name),
             shape_to_string(src.shape()), shape_to_string(expected));
    for (const NamedTensor* p : src.parts)
      QF_CHECK(dtype_is_float(p->tensor.dtype()), "tensor {} has dtype {}; a float tensor is expected",
               quote(p->name), dtype_name(p->tensor.dtype()));
    const std::string gguf_name = full_name(*r->rule, r->layer, Side::Gguf, t);
    const auto [it, fresh] = written.emplace(gguf_name, hf_name);
    QF_CHECK(fresh, "tensors {} and {} are the same weight ({})", quote(it->second), quote(hf_name), gguf_name);
    GgufTensorType tt{hf_name, gguf_name, gguf_shape(*r->rule, config), GgmlType::F32, {}, {}};
    for (const NamedTensor* p : src.parts) tt.hf_parts.push_back(p->name);
    if (expected.size() >= 2) {
      tt.type = *ggml_type_from_dtype(options.dtype);
      if (const auto b = source_blocks(src, options)) {
        tt.type = b->type;
        const Shape rows{tt.gguf_shape.front(), static_cast<int64_t>(gguf_row_bytes(tt.type, tt.gguf_shape.back()))};
        QF_CHECK(b->rows.dtype() == DType::U8 && b->rows.shape() == rows,
                 "pre-encoded {} blocks of {} must be U8 {}, got {} {}", ggml_type_name(tt.type), quote(hf_name),
                 shape_to_string(rows), dtype_name(b->rows.dtype()), shape_to_string(b->rows.shape()));
      } else if (options.recipe) {
        if (const auto choice = gguf_recipe_type(*options.recipe, gguf_name, tt.gguf_shape, context)) {
          tt.type = choice->type;
          tt.notice = choice->notice;
        }
      }
    }
    planned.push_back({r->rule, &src, std::move(tt)});
  }
  // Every required tensor, named on both sides in the error.
  auto check = [&](const Rule& r, int64_t layer) {
    if (!required(r, config)) return;
    const std::string g = full_name(r, layer, Side::Gguf, t);
    if (!written.contains(g)) fail("missing tensor {} (GGUF {})", quote(full_name(r, layer, Side::Hf, t)), g);
  };
  for (const Rule& r : t.global) check(r, -1);
  for (int64_t l = 0; l < config.n_layers; ++l)
    for (const Rule& r : t.layer) check(r, l);
  return planned;
}

// HF rows (any dtype, bytes per row moved as they are) to the GGUF layout.
Tensor to_gguf_layout(const Rule& r, const Tensor& t, const ModelConfig& c) { return apply(r, t, c, true); }

}  // namespace

std::vector<GgufTensorType> gguf_model_tensor_types(const ModelConfig& config, std::span<const NamedTensor> hf_tensors,
                                                    const GgufModelWriteOptions& options) {
  std::vector<GgufTensorType> out;
  const std::vector<Source> sources = with_context("GGUF", [&] { return sources_of(config, hf_tensors); });
  for (Planned& p : plan_model(config, sources, options)) out.push_back(std::move(p.type));
  return out;
}

void write_gguf_model(const std::string& path, const ModelConfig& config, std::span<const NamedTensor> hf_tensors,
                      const Vocab* vocab, const GgufModelWriteOptions& options) {
  GgufMetadata metadata;
  std::vector<GgufTensorSpec> plan;
  std::vector<Planned> planned;
  std::vector<Source> sources;
  with_context(path, [&] {
    sources = sources_of(config, hf_tensors);
    planned = plan_model(config, sources, options);
    const std::string name =
        options.name.empty() ? std::filesystem::path(path).stem().string() : options.name;
    metadata = gguf_model_metadata(config, vocab, options.dtype, name);
    if (options.recipe) metadata.set("general.file_type", static_cast<uint32_t>(options.recipe->file_type));
    if (options.file_type) metadata.set("general.file_type", static_cast<uint32_t>(*options.file_type));
    for (const Planned& p : planned) plan.push_back({p.type.gguf_name, p.type.type, p.type.gguf_shape});
  });
  for (const Planned& p : planned) {
    if (p.type.notice.empty()) continue;
    if (options.notice)
      options.notice(p.type.notice);
    else
      fmt::print(stderr, "notice: {}\n", p.type.notice);
  }

  // Scaling kept as per-frequency data, written first as llama.cpp's
  // converter does: llama3 as divisors of the plain frequencies, longrope as
  // its long and short factor sets.
  std::vector<std::pair<std::string, Tensor>> generated;
  auto add_generated = [&](std::string_view name, const std::vector<float>& values) {
    generated.emplace_back(std::string(name), Tensor::from_f32(values, {static_cast<int64_t>(values.size())}));
  };
  const std::string rope = model::rope_type_of(config.rope_scaling);
  if (rope == "llama3") add_generated(kRopeFreqs, model::rope_frequency_divisors(config));
  if (rope == "longrope") {
    add_generated(kRopeFactorsLong, model::longrope_factors(config, true));
    add_generated(kRopeFactorsShort, model::longrope_factors(config, false));
  }
  for (size_t i = 0; i < generated.size(); ++i)
    plan.insert(plan.begin() + static_cast<std::ptrdiff_t>(i),
                {generated[i].first, GgmlType::F32, generated[i].second.shape()});
  GgufWriter writer(path, metadata, plan);
  for (const auto& [name, values] : generated) writer.write(name, values);
  for (const Planned& p : planned) {
    const GgufTensorType& tt = p.type;
    with_context(fmt::format("{}: tensor {}", path, quote(tt.hf_name)), [&] {
      if (!gguf_is_codec_type(tt.type)) {
        Tensor source = p.source->tensor();
        const DType d = source.dtype();
        if (d != DType::F32 && d != DType::F16 && d != DType::BF16) source = source.to_f32();
        writer.write(tt.gguf_name, to_gguf_layout(*p.rule, source, config));
        return;
      }
      Tensor rows;
      if (const auto b = source_blocks(*p.source, options)) {
        // Given in [out, in] orientation: only the q/k permutation applies.
        rows = p.rule->transform == Transform::Transpose ? b->rows : to_gguf_layout(*p.rule, b->rows, config);
      } else {
        // A fused projection's parts read one input: any part's importance is the fused one's.
        const auto imp = options.importance.find(p.source->parts.front()->name);
        const std::span<const float> importance =
            imp == options.importance.end() ? std::span<const float>() : std::span<const float>(imp->second);
        rows = gguf_quantize_matrix(tt.type, to_gguf_layout(*p.rule, p.source->tensor().to_f32(), config), importance);
      }
      writer.write_raw(tt.gguf_name, std::span<const std::byte>(rows.bytes(), rows.nbytes()));
    });
  }
  writer.finish();
}

ModelConfig gguf_model_config(const GgufMetadata& m) {
  ModelConfig c;
  const std::string& arch = m.get<std::string>("general.architecture");
  const model::Family* family = nullptr;
  std::string supported;
  for (const model::Family* f : model::families()) {
    if (f->gguf_arch.empty() || supported.find(std::string(f->gguf_arch)) != std::string::npos) continue;
    supported += (supported.empty() ? "" : ", ") + std::string(f->gguf_arch);
    if (!family && f->gguf_arch == arch) family = f;  // "llama": the first, Llama itself
  }
  QF_CHECK(family, "general.architecture {} is not supported (supported: {})", quote(arch), supported);
  c.arch = family->layout;
  c.model_type = std::string(family->model_type);
  c.attention_bias = family->biases.qkv == model::BiasRule::Always;
  auto key = [&](std::string_view k) { return fmt::format("{}.{}", arch, k); };
  c.max_positions = get_count(m, key("context_length"));
  c.hidden_size = get_count(m, key("embedding_length"));
  c.n_layers = get_count(m, key("block_count"));
  c.intermediate_size = get_count(m, key("feed_forward_length"));
  c.n_heads = get_count(m, key("attention.head_count"));
  c.n_kv_heads = m.contains(key("attention.head_count_kv")) ? get_count(m, key("attention.head_count_kv")) : c.n_heads;
  QF_CHECK(c.n_heads > 0, "{} must be positive", key("attention.head_count"));
  if (m.contains(key("attention.key_length"))) {
    c.head_dim = get_count(m, key("attention.key_length"));
    if (m.contains(key("attention.value_length")))
      QF_CHECK(get_count(m, key("attention.value_length")) == c.head_dim,
               "{} differs from {}; different key and value head sizes are not supported",
               key("attention.value_length"), key("attention.key_length"));
  } else {
    QF_CHECK(c.hidden_size % c.n_heads == 0, "{} {} is not a multiple of {} {}", key("embedding_length"),
             c.hidden_size, key("attention.head_count"), c.n_heads);
    c.head_dim = c.hidden_size / c.n_heads;
  }
  if (c.arch == Architecture::GPT2) {
    c.norm_eps = static_cast<float>(m.get_float(key("attention.layer_norm_epsilon")));
  } else {
    c.norm_eps = static_cast<float>(m.get_float(key("attention.layer_norm_rms_epsilon")));
    if (m.contains(key("rope.freq_base"))) c.rope_theta = static_cast<float>(m.get_float(key("rope.freq_base")));
    if (m.contains(key("rope.dimension_count"))) {
      const int64_t rot = get_count(m, key("rope.dimension_count"));
      QF_CHECK(rot == c.head_dim, "{} is {} but heads have {} dimensions; partial RoPE is not supported",
               key("rope.dimension_count"), rot, c.head_dim);
    }
    if (m.contains(key("attention.sliding_window")))
      c.sliding_window = get_count(m, key("attention.sliding_window"));
    if (arch == "gemma3") {
      // What llama.cpp's gemma3 assumes (check_gguf_representable).
      c.sliding_layers.assign(static_cast<size_t>(c.n_layers), false);
      for (int64_t l = 0; l < c.n_layers; ++l) c.sliding_layers[static_cast<size_t>(l)] = (l + 1) % 6 != 0;
      c.rope_local_theta = 10000.0f;
      c.query_pre_attn_scalar = static_cast<float>(c.head_dim);
      if (!m.contains(key("rope.freq_base"))) c.rope_theta = 1e6f;
    }
    if (m.contains(key("rope.scaling.type"))) {
      const std::string& type = m.get<std::string>(key("rope.scaling.type"));
      if (type != "none") {
        c.rope_scaling = nlohmann::json{{"rope_type", type}};
        if (m.contains(key("rope.scaling.factor"))) c.rope_scaling["factor"] = m.get_float(key("rope.scaling.factor"));
        if (m.contains(key("rope.scaling.original_context_length")))
          c.rope_scaling["original_max_position_embeddings"] =
              get_count(m, key("rope.scaling.original_context_length"));
      }
    }
  }
  if (m.contains(key("vocab_size"))) {
    c.vocab_size = get_count(m, key("vocab_size"));
  } else if (const auto* tokens = m.find("tokenizer.ggml.tokens"); tokens && tokens->is_array()) {
    c.vocab_size = static_cast<int64_t>(tokens->array_size());
  }
  c.bos_token_id = get_token_id(m, "tokenizer.ggml.bos_token_id");
  c.eos_token_id = get_token_id(m, "tokenizer.ggml.eos_token_id");
  return c;
}

std::optional<Vocab> gguf_vocab(const GgufMetadata& m) {
  if (!m.contains("tokenizer.ggml.tokens")) return std::nullopt;
  Vocab v;
  const std::string& model = m.get<std::string>("tokenizer.ggml.model");
  if (model == "llama") {
    v.kind = VocabKind::SentencePiece;
  } else if (model == "gpt2") {
    v.kind = VocabKind::ByteLevelBPE;
  } else {
    fail("tokenizer.ggml.model {} is not supported (supported: llama, gpt2)", quote(model));
  }
  const bool spm = v.kind == VocabKind::SentencePiece;
  v.tokens = m.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  QF_CHECK(n > 0, "tokenizer.ggml.tokens is empty");
  if (const auto scores = m.get_optional<std::vector<float>>("tokenizer.ggml.scores")) {
    QF_CHECK(scores->size() == n, "tokenizer.ggml.scores has {} entries for {} tokens", scores->size(), n);
    v.scores = *scores;
  }
  if (const auto types = m.get_optional<std::vector<int32_t>>("tokenizer.ggml.token_type")) {
    QF_CHECK(types->size() == n, "tokenizer.ggml.token_type has {} entries for {} tokens", types->size(), n);
    v.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const int32_t t = (*types)[i];
      QF_CHECK(t >= 0 && t <= 6, "tokenizer.ggml.token_type[{}] is {}, not a token type (0 to 6)", i, t);
      v.types.push_back(t == 0 ? TokenType::Normal : static_cast<TokenType>(t));  // 0: llama.cpp's "undefined"
    }
  }
  if (const auto merges = m.get_optional<std::vector<std::string>>("tokenizer.ggml.merges")) v.merges = *merges;
  const std::pair<const char*, int32_t*> ids[] = {{"tokenizer.ggml.bos_token_id", &v.bos_id},
                                                  {"tokenizer.ggml.eos_token_id", &v.eos_id},
                                                  {"tokenizer.ggml.unknown_token_id", &v.unk_id},
                                                  {"tokenizer.ggml.padding_token_id", &v.pad_id}};
  for (const auto& [key, out] : ids) {
    *out = get_token_id(m, key);
    QF_CHECK(*out < 0 || static_cast<size_t>(*out) < n, "{} {} is not a token id (there are {} tokens)", key, *out,
             n);
  }
  // llama.cpp's defaults when the keys are absent.
  v.add_bos = m.get_optional<bool>("tokenizer.ggml.add_bos_token").value_or(spm);
  v.add_space_prefix = m.get_optional<bool>("tokenizer.ggml.add_space_prefix").value_or(spm);
  v.remove_extra_whitespaces = m.get_optional<bool>("tokenizer.ggml.remove_extra_whitespaces").value_or(false);
  return v;
}

GgufModel gguf_model_from_contents(const GgufContents& contents, const GgufModelReadOptions& options) {
  return with_context(contents.display_name, [&] {
    GgufModel out;
    ModelConfig& c = out.config;
    c = gguf_model_config(contents.metadata);
    out.vocab = gguf_vocab(contents.metadata);
    if (const auto* name = contents.metadata.find("general.name"); name && name->get_if<std::string>())
      out.name = *name->get_if<std::string>();
    const Tables t = tables_for(c);

    // Resolve every name first: the config's tensor-derived fields are needed
    // to check shapes.
    std::vector<std::pair<const GgufTensorInfo*, Resolved>> resolved;
    std::set<std::string> present;
    std::map<std::string_view, std::vector<float>> longrope;  // kRopeFactorsShort / kRopeFactorsLong
    for (const GgufTensorInfo& info : contents.tensors) {
      if ((info.name == kRopeFactorsShort || info.name == kRopeFactorsLong) &&
          model::family_of(c).gguf_arch == "phi3") {
        QF_CHECK(info.type == GgmlType::F32 && info.shape.size() == 1 && info.shape[0] == c.head_dim / 2,
                 "{} must be a 1-D F32 tensor of head_dim / 2 = {} factors", quote(info.name), c.head_dim / 2);
        const Tensor f = contents.tensor(info);
        longrope[info.name == kRopeFactorsShort ? kRopeFactorsShort : kRopeFactorsLong] =
            std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
        continue;
      }
      if (info.name == kRopeFreqs) {
        QF_CHECK(info.type == GgmlType::F32 && info.shape.size() == 1, "{} must be a 1-D F32 tensor",
                 quote(info.name));
        const Tensor f = contents.tensor(info);
        QF_CHECK(c.rope_scaling.is_null(), "{} and rope.scaling.type both scale RoPE", quote(info.name));
        c.rope_scaling =
            model::llama3_rope_from_divisors(c, std::vector<float>(f.data<float>(), f.data<float>() + f.numel()));
        continue;
      }
      const auto r = resolve(info.name, t, Side::Gguf);
      if (!r)
        fail("tensor {} is not a known {} tensor name", quote(info.name),
             contents.metadata.get<std::string>("general.architecture"));
      QF_CHECK(r->layer < c.n_layers, "tensor {} is in block {} but block_count is {}", quote(info.name), r->layer,
               c.n_layers);
      resolved.emplace_back(&info, *r);
      present.insert(info.name);
    }
    if (!longrope.empty()) {
      QF_CHECK(longrope.size() == 2, "{} needs {} beside it", quote(longrope.begin()->first),
               quote(longrope.begin()->first == kRopeFactorsShort ? kRopeFactorsLong : kRopeFactorsShort));
      const std::string arch = contents.metadata.get<std::string>("general.architecture");
      const std::string orig_key = arch + ".rope.scaling.original_context_length";
      nlohmann::json r = {{"rope_type", "longrope"},
                          {"short_factor", factor_list(longrope.at(kRopeFactorsShort))},
                          {"long_factor", factor_list(longrope.at(kRopeFactorsLong))},
                          {"original_max_position_embeddings",
                           contents.metadata.contains(orig_key) ? get_count(contents.metadata, orig_key)
                                                                : c.max_positions}};
      c.rope_scaling = r;
      // Kept only when it is not the default the factor sets imply anyway.
      if (const std::string key = arch + ".rope.scaling.attn_factor"; contents.metadata.contains(key)) {
        const double given = contents.metadata.get_float(key), implied = model::longrope_attention_factor(c);
        if (std::abs(given - implied) > 1e-6 * implied) c.rope_scaling["attention_factor"] = given;
      }
    }
    c.tie_embeddings = !present.contains("output.weight");
    if (model::family_of(c).biases.qkv == model::BiasRule::IfAttentionBias)
      c.attention_bias = present.contains("blk.0.attn_q.bias");
    if (c.vocab_size == 0)
      if (const auto* embd = contents.find("token_embd.weight"); embd && !embd->shape.empty())
        c.vocab_size = embd->shape.front();
    c.validate("");
    if (out.vocab)
      QF_CHECK(static_cast<int64_t>(out.vocab->tokens.size()) == c.vocab_size,
               "tokenizer.ggml.tokens has {} tokens but the model's vocab_size is {}", out.vocab->tokens.size(),
               c.vocab_size);

    for (const Rule& r : t.global)
      if (required(r, c) && !present.contains(std::string(r.gguf))) fail("missing tensor {}", r.gguf);
    for (int64_t l = 0; l < c.n_layers; ++l)
      for (const Rule& r : t.layer)
        if (required(r, c) && !present.contains(full_name(r, l, Side::Gguf, t)))
          fail("missing tensor {}", full_name(r, l, Side::Gguf, t));

    out.tensors.reserve(resolved.size());
    for (const auto& [info, r] : resolved) {
      const Shape expected = gguf_shape(*r.rule, c);
      QF_CHECK(shape_equal(info->shape, expected), "tensor {} has shape {} (row-major), expected {}",
               quote(info->name), shape_to_string(info->shape), shape_to_string(expected));
      std::string hf_name = full_name(*r.rule, r.layer, Side::Hf, t);
      if (options.keep_blocks && gguf_is_codec_type(info->type) && info->shape.size() == 2 &&
          options.keep_blocks(info->type, hf_name)) {
        const int64_t rows = info->shape[0];
        const int64_t row_bytes = static_cast<int64_t>(gguf_row_bytes(info->type, info->shape[1]));
        Tensor raw = Tensor::view(DType::U8, {rows, row_bytes}, contents.tensor_bytes(*info).data(), contents.owner);
        // Blocks run along rows, so the q/k permutation moves whole block rows;
        // GPT-2's Conv1D transpose is skipped: blocks stay [out, in] as stored.
        if (r.rule->transform != Transform::Transpose) raw = apply(*r.rule, raw, c, false);
        out.blocks.emplace(std::move(hf_name), GgufBlocks{info->type, std::move(raw)});
        continue;
      }
      const Tensor stored = contents.tensor(*info);
      out.tensors.push_back({std::move(hf_name), apply(*r.rule, stored, c, false)});
    }
    return out;
  });
}

GgufModel read_gguf_model(const std::string& path, const GgufModelReadOptions& options) {
  return gguf_model_from_contents(read_gguf(path), options);
}

}  // namespace qf::formats
