// Reader for llama2.c checkpoints (legacy version 0, as written by
// karpathy/llama2.c export.py --version 0 and the tinyllamas models): a header
// of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len), then fp32 tensors grouped by kind across layers:
// token embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// optionally the (unused) RoPE tables, then the classifier when not shared.
// A negative vocab_size means the classifier is not shared with the embedding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/named_tensor.h"

namespace qf::formats {

struct Llama2cConfig {
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // always positive here; the sign is in shared_classifier
  int32_t seq_len = 0;
  bool shared_classifier = true;
  bool has_rope_tables = false;  // the file carries the legacy freq_cis tables

  int32_t head_size() const { return dim / n_heads; }
  int32_t kv_dim() const { return head_size() * n_kv_heads; }
};

struct Llama2cModel {
  Llama2cConfig config;
  // Hugging Face Llama names and shapes, in file order: model.embed_tokens.weight,
  // model.layers.{i}.input_layernorm.weight, ...self_attn.{q,k,v,o}_proj.weight,
  // ...post_attention_layernorm.weight, ...mlp.{gate,down,up}_proj.weight
  // (w1, w2, w3), model.norm.weight, and lm_head.weight only when unshared.
  // The RoPE tables are not returned.
  std::vector<NamedTensor> tensors;
};

// Parses a whole llama2.c file held in memory; tensors are F32 views into
// `bytes` keeping `owner` alive. Throws qf::Error starting with `display_name`.
Llama2cModel parse_llama2c(std::span<const std::byte> bytes, const std::string& display_name,
                           std::shared_ptr<const void> owner = nullptr);

// Memory-maps `path` and parses it.
Llama2cModel read_llama2c(const std::string& path);

// Whether `bytes` is a well-formed llama2.c file (valid header, exact size),
// for telling it apart from other formats without a file extension.
bool looks_like_llama2c(std::span<const std::byte> bytes);

}  // namespace qf::formats
