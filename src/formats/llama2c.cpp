#include "formats/llama2c.h"

#include <bit>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/tensor_view.h"

namespace qf::formats {
namespace {

static_assert(std::endian::native == std::endian::little, "llama2.c files are little-endian");

constexpr size_t kLlama2cHeaderBytes = 7 * sizeof(int32_t);
// llama2.c export version >= 1 starts with this magic ("ak42") instead of dim.
constexpr uint32_t kVersionedMagic = 0x616b3432;

std::string describe(const Llama2cConfig& c) {
  return fmt::format("dim {}, hidden_dim {}, n_layers {}, n_heads {}, n_kv_heads {}, vocab_size {}, seq_len {}", c.dim,
                     c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len);
}

Llama2cConfig parse_header(std::span<const std::byte> bytes) {
  QF_CHECK(bytes.size() >= kLlama2cHeaderBytes, "file is {} bytes, shorter than the {}-byte llama2.c header", bytes.size(),
           kLlama2cHeaderBytes);
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof h);
  QF_CHECK(static_cast<uint32_t>(h[0]) != kVersionedMagic,
           "llama2.c export version 1 or later (magic \"ak42\"); only the legacy version 0 format is supported");
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    if (i == 5) continue;  // vocab_size carries a sign flag
    QF_CHECK(h[i] > 0, "llama2.c header: {} must be positive, got {}", names[i], h[i]);
  }
  QF_CHECK(h[5] != 0 && h[5] != std::numeric_limits<int32_t>::min(),
           "llama2.c header: vocab_size must be nonzero (negative means an unshared classifier), got {}", h[5]);
  Llama2cConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.shared_classifier = h[5] > 0;
  c.seq_len = h[6];
  QF_CHECK(c.dim % c.n_heads == 0, "llama2.c header: n_heads {} does not divide dim {}", c.n_heads, c.dim);
  QF_CHECK(c.n_heads % c.n_kv_heads == 0, "llama2.c header: n_kv_heads {} does not divide n_heads {}", c.n_kv_heads,
           c.n_heads);
  QF_CHECK(c.head_size() % 2 == 0, "llama2.c header: head size {} (dim / n_heads) must be even for RoPE",
           c.head_size());
  return c;
}

// Products of header values can exceed 64 bits (7 int32s); any file that big
// cannot exist, so overflow is just another "file too small".
uint64_t checked_mul(uint64_t a, uint64_t b, const Llama2cConfig& c) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail("llama2.c header ({}) implies an impossibly large file", describe(c));
  return r;
}

uint64_t checked_add(uint64_t a, uint64_t b, const Llama2cConfig& c) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail("llama2.c header ({}) implies an impossibly large file", describe(c));
  return r;
}

// fp32 count of all returned tensors, computed before any tensor is listed so
// that a hostile n_layers cannot make us build billions of names.
uint64_t weight_floats(const Llama2cConfig& c) {
  const uint64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  auto mul = [&](uint64_t a, uint64_t b) { return checked_mul(a, b, c); };
  auto add = [&](uint64_t a, uint64_t b) { return checked_add(a, b, c); };
  uint64_t layer = add(2 * d, mul(2, mul(d, d)));
  layer = add(layer, mul(2, mul(kv, d)));
  layer = add(layer, mul(3, mul(h, d)));
  uint64_t total = add(mul(v, d), mul(c.n_layers, layer));
  total = add(total, d);
  return c.shared_classifier ? total : add(total, mul(v, d));
}

// Names and shapes in file order.
std::vector<std::pair<std::string, Shape>> tensor_list(const Llama2cConfig& c) {
  std::vector<std::pair<std::string, Shape>> out;
  const int64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  auto per_layer = [&](const char* suffix, const Shape& shape) {
    for (int i = 0; i < c.n_layers; ++i) out.emplace_back(fmt::format("model.layers.{}.{}", i, suffix), shape);
  };
  // Rows stay as stored. Checkpoints converted from Meta's weights to Hugging
  // Face permute q/k rows for HF's rotate_half RoPE; llama2.c's layout is not
  // re-permuted here: quantization treats rows independently, and nothing in
  // QuantForge runs these weights through HF's RoPE.
  out.emplace_back("model.embed_tokens.weight", Shape{v, d});
  per_layer("input_layernorm.weight", {d});
  per_layer("self_attn.q_proj.weight", {d, d});
  per_layer("self_attn.k_proj.weight", {kv, d});
  per_layer("self_attn.v_proj.weight", {kv, d});
  per_layer("self_attn.o_proj.weight", {d, d});
  per_layer("post_attention_layernorm.weight", {d});
  per_layer("mlp.gate_proj.weight", {h, d});  // w1
  per_layer("mlp.down_proj.weight", {d, h});  // w2
  per_layer("mlp.up_proj.weight", {h, d});    // w3
  out.emplace_back("model.norm.weight", Shape{d});
  if (!c.shared_classifier) out.emplace_back("lm_head.weight", Shape{v, d});
  return out;
}

Llama2cModel parse_llama2c_bytes(std::span<const std::byte> bytes, const std::shared_ptr<const void>& owner) {
  Llama2cModel model;
  model.config = parse_header(bytes);
  Llama2cConfig& c = model.config;
  // freq_cis_real and freq_cis_imag, each seq_len x head_size / 2 floats.
  const uint64_t rope_bytes = checked_mul(checked_mul(c.seq_len, c.head_size(), c), 4, c);
  const uint64_t without_rope = checked_add(kLlama2cHeaderBytes, checked_mul(weight_floats(c), 4, c), c);
  const uint64_t with_rope = checked_add(without_rope, rope_bytes, c);
  const uint64_t size = bytes.size();
  QF_CHECK(size >= without_rope, "file is {} bytes but the llama2.c config ({}) needs {} bytes (truncated?)", size,
           describe(c), without_rope);
  QF_CHECK(size == without_rope || size == with_rope,
           "file is {} bytes but the llama2.c config ({}) implies exactly {} bytes without the RoPE tables or {} "
           "with them",
           size, describe(c), without_rope, with_rope);
  c.has_rope_tables = size == with_rope && rope_bytes > 0;

  uint64_t offset = kLlama2cHeaderBytes;
  for (auto& [name, shape] : tensor_list(c)) {
    // The unshared classifier comes after the RoPE tables when they exist.
    if (name == "lm_head.weight" && c.has_rope_tables) offset += rope_bytes;
    Tensor t = view_or_copy(DType::F32, shape, bytes.data() + offset, owner);
    offset += t.nbytes();
    model.tensors.push_back({std::move(name), std::move(t)});
  }
  return model;
}

}  // namespace

Llama2cModel parse_llama2c(std::span<const std::byte> bytes, const std::string& display_name,
                           std::shared_ptr<const void> owner) {
  return with_context(display_name, [&] { return parse_llama2c_bytes(bytes, owner); });
}

Llama2cModel read_llama2c(const std::string& path) {
  const auto file = MappedFile::open(path);
  return parse_llama2c(file->bytes(), path, file);
}

bool looks_like_llama2c(std::span<const std::byte> bytes) {
  try {
    parse_llama2c_bytes(bytes, nullptr);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace qf::formats
