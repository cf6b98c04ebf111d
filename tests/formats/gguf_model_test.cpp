// Models through GGUF: llama.cpp's names, metadata and layouts on the way in,
// bit-identical tensors, config and vocab on the way back.
#include "formats/gguf_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/float_formats.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "model/arch/fused_projections.h"
#include "model/rope.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;
using model::Architecture;
using model::ModelConfig;
using tokenizer::TokenType;
using tokenizer::Vocab;
using tokenizer::VocabKind;

Tensor random_tensor(const Shape& shape, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 0.5f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(rng);
  return Tensor::from_f32(v, shape);
}

// A small Llama with grouped-query attention: 4 heads of 4, 2 KV heads.
ModelConfig llama_config() {
  ModelConfig c;
  c.arch = Architecture::Llama;
  c.model_type = "llama";
  c.vocab_size = 11;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.max_positions = 32;
  c.norm_eps = 1e-6f;
  c.rope_theta = 500000.0f;
  c.tie_embeddings = false;
  c.attention_bias = false;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

std::vector<NamedTensor> llama_tensors(const ModelConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t h = c.hidden_size, q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim,
                ff = c.intermediate_size, v = c.vocab_size;
  std::vector<NamedTensor> out = {{"model.embed_tokens.weight", random_tensor({v, h}, rng)}};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", random_tensor({h}, rng)});
    out.push_back({p + "self_attn.q_proj.weight", random_tensor({q, h}, rng)});
    out.push_back({p + "self_attn.k_proj.weight", random_tensor({kv, h}, rng)});
    out.push_back({p + "self_attn.v_proj.weight", random_tensor({kv, h}, rng)});
    if (c.attention_bias) {
      out.push_back({p + "self_attn.q_proj.bias", random_tensor({q}, rng)});
      out.push_back({p + "self_attn.k_proj.bias", random_tensor({kv}, rng)});
      out.push_back({p + "self_attn.v_proj.bias", random_tensor({kv}, rng)});
    }
    out.push_back({p + "self_attn.o_proj.weight", random_tensor({h, q}, rng)});
    out.push_back({p + "post_attention_layernorm.weight", random_tensor({h}, rng)});
    out.push_back({p + "mlp.gate_proj.weight", random_tensor({ff, h}, rng)});
    out.push_back({p + "mlp.up_proj.weight", random_tensor({ff, h}, rng)});
    out.push_back({p + "mlp.down_proj.weight", random_tensor({h, ff}, rng)});
  }
  out.push_back({"model.norm.weight", random_tensor({h}, rng)});
  if (!c.tie_embeddings) out.push_back({"lm_head.weight", random_tensor({v, h}, rng)});
  return out;
}

Vocab spm_vocab() {
  Vocab v;
  v.kind = VocabKind::SentencePiece;
  v.tokens = {"<unk>", "<s>", "</s>", "<0x0A>", "▁the", "▁a", "e", "t", "▁", "he", "▁cat"};
  v.scores = {0.0f, 0.0f, 0.0f, 0.0f, -1.5f, -2.0f, -3.25f, -3.5f, -4.0f, -5.0f, -6.0f};
  v.types = {TokenType::Unknown, TokenType::Control, TokenType::Control, TokenType::Byte, TokenType::Normal,
             TokenType::Normal,  TokenType::Normal,  TokenType::Normal,  TokenType::Normal, TokenType::UserDefined,
             TokenType::Unused};
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  v.add_bos = true;
  v.add_space_prefix = true;
  v.remove_extra_whitespaces = true;
  return v;
}

ModelConfig gpt2_config() {
  ModelConfig c;
  c.arch = Architecture::GPT2;
  c.model_type = "gpt2";
  c.vocab_size = 10;
  c.hidden_size = 12;
  c.intermediate_size = 48;
  c.n_layers = 2;
  c.n_heads = 3;
  c.n_kv_heads = 3;
  c.head_dim = 4;
  c.max_positions = 16;
  c.norm_eps = 1e-5f;
  c.tie_embeddings = true;
  c.attention_bias = true;
  c.bos_token_id = 9;
  c.eos_token_id = 9;
  return c;
}

// HF GPT2LMHeadModel names; Conv1D weights [in, out].
std::vector<NamedTensor> gpt2_tensors(const ModelConfig& c, uint32_t seed, const std::string& prefix = "transformer.") {
  std::mt19937 rng(seed);
  const int64_t h = c.hidden_size, ff = c.intermediate_size;
  std::vector<NamedTensor> out = {{prefix + "wte.weight", random_tensor({c.vocab_size, h}, rng)},
                                  {prefix + "wpe.weight", random_tensor({c.max_positions, h}, rng)}};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = prefix + "h." + std::to_string(l) + ".";
    out.push_back({p + "ln_1.weight", random_tensor({h}, rng)});
    out.push_back({p + "ln_1.bias", random_tensor({h}, rng)});
    out.push_back({p + "attn.c_attn.weight", random_tensor({h, 3 * h}, rng)});
    out.push_back({p + "attn.c_attn.bias", random_tensor({3 * h}, rng)});
    out.push_back({p + "attn.c_proj.weight", random_tensor({h, h}, rng)});
    out.push_back({p + "attn.c_proj.bias", random_tensor({h}, rng)});
    out.push_back({p + "ln_2.weight", random_tensor({h}, rng)});
    out.push_back({p + "ln_2.bias", random_tensor({h}, rng)});
    out.push_back({p + "mlp.c_fc.weight", random_tensor({h, ff}, rng)});
    out.push_back({p + "mlp.c_fc.bias", random_tensor({ff}, rng)});
    out.push_back({p + "mlp.c_proj.weight", random_tensor({ff, h}, rng)});
    out.push_back({p + "mlp.c_proj.bias", random_tensor({h}, rng)});
  }
  out.push_back({prefix + "ln_f.weight", random_tensor({h}, rng)});
  out.push_back({prefix + "ln_f.bias", random_tensor({h}, rng)});
  if (!c.tie_embeddings) out.push_back({"lm_head.weight", random_tensor({c.vocab_size, h}, rng)});
  return out;
}

Vocab bpe_vocab() {
  Vocab v;
  v.kind = VocabKind::ByteLevelBPE;
  v.tokens = {"!", "\"", "h", "e", "l", "o", "Ġ", "he", "hel", "<|endoftext|>"};
  v.types = std::vector<TokenType>(10, TokenType::Normal);
  v.types[9] = TokenType::Control;
  v.merges = {"h e", "he l"};
  v.bos_id = 9;
  v.eos_id = 9;
  v.add_bos = false;
  v.add_space_prefix = false;
  return v;
}

void expect_same_vocab(const Vocab& a, const Vocab& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.scores, b.scores);
  EXPECT_EQ(a.types, b.types);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.bos_id, b.bos_id);
  EXPECT_EQ(a.eos_id, b.eos_id);
  EXPECT_EQ(a.unk_id, b.unk_id);
  EXPECT_EQ(a.pad_id, b.pad_id);
  EXPECT_EQ(a.add_bos, b.add_bos);
  EXPECT_EQ(a.add_space_prefix, b.add_space_prefix);
  EXPECT_EQ(a.remove_extra_whitespaces, b.remove_extra_whitespaces);
}

std::map<std::string, Tensor> by_name(const std::vector<NamedTensor>& tensors) {
  std::map<std::string, Tensor> out;
  for (const auto& t : tensors) EXPECT_TRUE(out.emplace(t.name, t.tensor).second) << "duplicate " << t.name;
  return out;
}

void expect_bit_identical(const std::vector<NamedTensor>& expected, const std::vector<NamedTensor>& actual) {
  const auto a = by_name(actual);
  ASSERT_EQ(a.size(), expected.size());
  for (const auto& e : expected) {
    SCOPED_TRACE(e.name);
    const auto it = a.find(e.name);
    ASSERT_NE(it, a.end());
    EXPECT_EQ(it->second.dtype(), e.tensor.dtype());
    ASSERT_EQ(it->second.shape(), e.tensor.shape());
    EXPECT_EQ(std::memcmp(it->second.bytes(), e.tensor.bytes(), e.tensor.nbytes()), 0);
  }
}

// One row of a 2-D tensor as floats.
std::vector<float> row(const Tensor& t, int64_t r) {
  const auto all = t.to_f32_vector();
  return {all.begin() + r * t.cols(), all.begin() + (r + 1) * t.cols()};
}

TEST(GgufModel, LlamaGqaRoundTripIsBitIdentical) {
  TempDir dir;
  const auto path = dir.file("llama.gguf");
  const ModelConfig config = llama_config();
  const auto tensors = llama_tensors(config, 1);
  const Vocab vocab = spm_vocab();
  write_gguf_model(path, config, tensors, &vocab, DType::F32);

  const GgufModel m = read_gguf_model(path);
  EXPECT_EQ(m.config, config);
  EXPECT_EQ(m.name, "llama");
  ASSERT_TRUE(m.vocab);
  expect_same_vocab(*m.vocab, vocab);
  expect_bit_identical(tensors, m.tensors);
}

TEST(GgufModel, LlamaFileHasLlamaCppNamesKeysAndPermutedRows) {
  TempDir dir;
  const auto path = dir.file("llama.gguf");
  const ModelConfig config = llama_config();
  const auto tensors = llama_tensors(config, 2);
  const auto hf = by_name(tensors);
  const Vocab vocab = spm_vocab();
  GgufModelWriteOptions options;
  options.name = "Tiny Llama";
  write_gguf_model(path, config, tensors, &vocab, options);

  const GgufContents c = read_gguf(path);
  const GgufMetadata& md = c.metadata;
  EXPECT_EQ(md.get<std::string>("general.architecture"), "llama");
  EXPECT_EQ(md.get<std::string>("general.name"), "Tiny Llama");
  EXPECT_EQ(md.get<uint32_t>("general.file_type"), 0u);
  EXPECT_EQ(md.get<uint32_t>("general.quantization_version"), 2u);
  EXPECT_EQ(md.get<uint32_t>("llama.context_length"), 32u);
  EXPECT_EQ(md.get<uint32_t>("llama.embedding_length"), 16u);
  EXPECT_EQ(md.get<uint32_t>("llama.block_count"), 2u);
  EXPECT_EQ(md.get<uint32_t>("llama.feed_forward_length"), 24u);
  EXPECT_EQ(md.get<uint32_t>("llama.attention.head_count"), 4u);
  EXPECT_EQ(md.get<uint32_t>("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(md.get<float>("llama.attention.layer_norm_rms_epsilon"), 1e-6f);
  EXPECT_EQ(md.get<float>("llama.rope.freq_base"), 500000.0f);
  EXPECT_EQ(md.get<uint32_t>("llama.rope.dimension_count"), 4u);
  EXPECT_EQ(md.get<uint32_t>("llama.vocab_size"), 11u);
  EXPECT_FALSE(md.contains("llama.attention.key_length"));
  EXPECT_EQ(md.get<std::string>("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(md.get<std::vector<std::string>>("tokenizer.ggml.tokens"), vocab.tokens);
  EXPECT_EQ(md.get<std::vector<float>>("tokenizer.ggml.scores"), vocab.scores);
  EXPECT_EQ(md.get<std::vector<int32_t>>("tokenizer.ggml.token_type")[3], 6);
  EXPECT_EQ(md.get<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(md.get<uint32_t>("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(md.get<uint32_t>("tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_FALSE(md.contains("tokenizer.ggml.padding_token_id"));
  EXPECT_EQ(md.get<bool>("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(md.get<bool>("tokenizer.ggml.add_space_prefix"), true);

  const std::vector<std::string> names = {"token_embd.weight",      "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
                                          "blk.0.attn_k.weight",    "blk.0.attn_v.weight",    "blk.0.attn_output.weight",
                                          "blk.0.ffn_norm.weight",  "blk.0.ffn_gate.weight",  "blk.0.ffn_up.weight",
                                          "blk.0.ffn_down.weight",  "output_norm.weight",     "output.weight"};
  for (const auto& n : names) EXPECT_NE(c.find(n), nullptr) << n;
  EXPECT_EQ(c.tensors.size(), 3u + 2 * 9);

  // Not permuted: bytes as given.
  EXPECT_EQ(row(c.tensor(*c.find("blk.1.attn_v.weight")), 5), row(hf.at("model.layers.1.self_attn.v_proj.weight"), 5));
  EXPECT_EQ(c.find("blk.0.ffn_down.weight")->shape, (Shape{16, 24}));
  EXPECT_EQ(c.find("blk.0.ffn_down.weight")->ggml_dims, (std::vector<uint64_t>{24, 16}));

  // q: 4 heads of 4 rows, half = 2. GGUF row h*4 + 2i + j holds HF row h*4 + j*2 + i.
  const Tensor q_gguf = c.tensor(*c.find("blk.0.attn_q.weight"));
  const Tensor& q_hf = hf.at("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(row(q_gguf, 1), row(q_hf, 2));   // head 0, i 0, j 1
  EXPECT_EQ(row(q_gguf, 2), row(q_hf, 1));   // head 0, i 1, j 0
  EXPECT_EQ(row(q_gguf, 0), row(q_hf, 0));
  EXPECT_EQ(row(q_gguf, 13), row(q_hf, 14));  // head 3
  EXPECT_NE(row(q_gguf, 1), row(q_hf, 1));
  // k: permuted with the 2 KV heads, not the 4 query heads.
  const Tensor k_gguf = c.tensor(*c.find("blk.1.attn_k.weight"));
  const Tensor& k_hf = hf.at("model.layers.1.self_attn.k_proj.weight");
  EXPECT_EQ(row(k_gguf, 5), row(k_hf, 6));
  EXPECT_EQ(row(k_gguf, 6), row(k_hf, 5));
  for (int64_t r = 0; r < 8; ++r) {
    const int64_t head = r / 4, i = (r % 4) / 2, j = r % 2;
    EXPECT_EQ(row(k_gguf, r), row(k_hf, head * 4 + j * 2 + i)) << r;
  }
  // The exported helpers agree with the file.
  const Tensor permuted = rope_rows_half_to_interleaved(q_hf, 4);
  EXPECT_EQ(permuted.to_f32_vector(), q_gguf.to_f32_vector());
  EXPECT_EQ(rope_rows_interleaved_to_half(permuted, 4).to_f32_vector(), q_hf.to_f32_vector());
}

TEST(GgufModel, LlamaWithBiasesTiedEmbeddingsAndLongHeads) {
  TempDir dir;
  const auto path = dir.file("biased.gguf");
  ModelConfig config = llama_config();
  config.attention_bias = true;
  config.tie_embeddings = true;
  config.head_dim = 8;  // 4 x 8 = 32 != hidden 16: written as key_length / value_length
  const auto tensors = llama_tensors(config, 3);
  write_gguf_model(path, config, tensors, nullptr, DType::F32);
  const GgufContents c = read_gguf(path);
  EXPECT_EQ(c.metadata.get<uint32_t>("llama.attention.key_length"), 8u);
  EXPECT_EQ(c.find("output.weight"), nullptr);
  // Biases are permuted like their weights.
  const auto hf = by_name(tensors);
  const auto qb = c.tensor(*c.find("blk.0.attn_q.bias")).to_f32_vector();
  const auto qb_hf = hf.at("model.layers.0.self_attn.q_proj.bias").to_f32_vector();
  EXPECT_EQ(qb[1], qb_hf[4]);  // head_dim 8, half 4: GGUF 2i + j = 1 <- HF j*4 + i = 4
  EXPECT_EQ(c.metadata.get<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);  // from the config without a vocab

  const GgufModel m = read_gguf_model(path);
  EXPECT_EQ(m.config, config);
  EXPECT_FALSE(m.vocab);
  expect_bit_identical(tensors, m.tensors);
}

// llama.cpp's converter writes llama3 scaling as rope_freqs, divisors of the
// plain frequencies; the reader recovers an equivalent rope_scaling.
TEST(GgufModel, Llama3RopeTravelsAsFrequencyDivisors) {
  TempDir dir;
  ModelConfig config = llama_config();
  config.head_dim = 64;
  const auto frequencies = [](const ModelConfig& c) { return model::rope_frequencies(c, false, 1).inv_freq; };
  struct Case {
    double lo, hi, old_len;
    int64_t head_dim;
  };
  // Llama 3.1's values; others with several frequencies in the smooth band;
  // a short original context that leaves no frequency in the band.
  // (head_dim 16, base 500000: wavelengths 6.3 kept and 32.5 scaled, none in [8, 32]).
  for (const Case& k : {Case{1, 4, 8192, 64}, Case{2, 6, 4096, 64}, Case{1, 4, 32, 16}}) {
    config.head_dim = k.head_dim;
    config.rope_scaling = {{"rope_type", "llama3"},
                           {"factor", 8.0},
                           {"low_freq_factor", k.lo},
                           {"high_freq_factor", k.hi},
                           {"original_max_position_embeddings", k.old_len}};
    const auto path = dir.file(fmt::format("llama3_{}_{}.gguf", k.lo, k.old_len));
    const auto tensors = llama_tensors(config, 5);
    write_gguf_model(path, config, tensors, nullptr, DType::F32);
    const GgufContents c = read_gguf(path);
    EXPECT_FALSE(c.metadata.contains("llama.rope.scaling.type"));
    const GgufTensorInfo* freqs = c.find("rope_freqs.weight");
    ASSERT_NE(freqs, nullptr);
    const auto divisors = c.tensor(*freqs).to_f32_vector();
    ASSERT_EQ(divisors.size(), static_cast<size_t>(k.head_dim / 2));
    EXPECT_FLOAT_EQ(divisors.front(), 1.0f);  // short wavelengths keep their frequency
    EXPECT_FLOAT_EQ(divisors.back(), 8.0f);   // long ones are interpolated by the factor

    const GgufModel m = read_gguf_model(path);
    if (k.old_len == 8192) {
      EXPECT_EQ(m.config, config);  // Llama 3.1's own values come back as they were
    }
    EXPECT_EQ(m.config.rope_scaling.at("rope_type"), "llama3");
    const auto want = frequencies(config), got = frequencies(m.config);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6 * want[i]) << i;
    expect_bit_identical(tensors, m.tensors);
  }
  // Divisors no llama3 scaling makes are refused by name.
  ModelConfig plain = config;
  plain.head_dim = 64;
  std::vector<float> odd(32, 1.0f);
  odd[3] = 5.0f;
  expect_error([&] { model::llama3_rope_from_divisors(plain, odd); }, {"rope_freqs", "llama3"});
}

// Phi-3: the Model's q/k/v and gate/up parts are fused as llama.cpp's phi3
// graph wants them (attn_qkv; ffn_up of 2 n_ff rows, gate first), with NEOX
// rows (no permutation), and longrope as its two factor tensors plus the
// attention factor and original context keys; reading splits them again.
TEST(GgufModel, Phi3FusesProjectionsAndKeepsLongropeAsFactorTensors) {
  TempDir dir;
  ModelConfig config = llama_config();
  config.model_type = "phi3";
  config.rope_theta = 10000.0f;
  config.rope_scaling = {{"rope_type", "longrope"},
                         {"short_factor", {1.0, 1.25}},
                         {"long_factor", {2.5, 6.0}},
                         {"original_max_position_embeddings", 16}};
  const auto tensors = llama_tensors(config, 9);
  const auto path = dir.file("phi3.gguf");
  write_gguf_model(path, config, tensors, nullptr, DType::F32);

  const GgufContents c = read_gguf(path);
  EXPECT_EQ(c.metadata.get<std::string>("general.architecture"), "phi3");
  EXPECT_EQ(c.metadata.get_uint("phi3.rope.scaling.original_context_length"), 16u);
  EXPECT_NEAR(c.metadata.get_float("phi3.rope.scaling.attn_factor"), std::sqrt(1 + std::log(2.0) / std::log(16.0)),
              1e-6);
  EXPECT_EQ(c.metadata.get_uint("phi3.attention.sliding_window"), 0u);
  EXPECT_FALSE(c.metadata.contains("phi3.rope.scaling.type"));
  EXPECT_EQ(c.tensors.front().name, "rope_factors_long.weight");
  EXPECT_EQ(c.tensor(*c.find("rope_factors_long.weight")).to_f32_vector(), (std::vector<float>{2.5f, 6.0f}));
  EXPECT_EQ(c.tensor(*c.find("rope_factors_short.weight")).to_f32_vector(), (std::vector<float>{1.0f, 1.25f}));
  EXPECT_EQ(c.find("blk.0.attn_q.weight"), nullptr);
  EXPECT_EQ(c.find("blk.0.ffn_gate.weight"), nullptr);
  const auto named = by_name(tensors);
  const int64_t q = config.q_dim(), kv = config.kv_dim(), ff = config.intermediate_size;
  const Tensor qkv = c.tensor(*c.find("blk.1.attn_qkv.weight"));
  ASSERT_EQ(qkv.shape(), (Shape{q + 2 * kv, config.hidden_size}));
  EXPECT_EQ(row(qkv, 1), row(named.at("model.layers.1.self_attn.q_proj.weight"), 1));  // not permuted
  EXPECT_EQ(row(qkv, q + 1), row(named.at("model.layers.1.self_attn.k_proj.weight"), 1));
  EXPECT_EQ(row(qkv, q + kv), row(named.at("model.layers.1.self_attn.v_proj.weight"), 0));
  const Tensor up = c.tensor(*c.find("blk.0.ffn_up.weight"));
  ASSERT_EQ(up.shape(), (Shape{2 * ff, config.hidden_size}));
  EXPECT_EQ(row(up, 2), row(named.at("model.layers.0.mlp.gate_proj.weight"), 2));
  EXPECT_EQ(row(up, ff + 2), row(named.at("model.layers.0.mlp.up_proj.weight"), 2));

  const GgufModel m = read_gguf_model(path);
  EXPECT_EQ(m.config, config);
  EXPECT_EQ(by_name(m.tensors).count("model.layers.0.self_attn.qkv_proj.weight"), 1u);
  expect_bit_identical(tensors, model::split_fused_projections(m.config, m.tensors));

  // A layer missing a part cannot be fused.
  std::vector<NamedTensor> missing;
  for (const auto& t : tensors)
    if (t.name != "model.layers.1.self_attn.k_proj.weight") missing.push_back(t);
  expect_error([&] { write_gguf_model(dir.file("bad.gguf"), config, missing, nullptr, DType::F32); },
               {"model.layers.1.self_attn.v_proj.weight", "qkv_proj"});
}

TEST(GgufModel, Qwen2IsNotPermuted) {
  TempDir dir;
  const auto path = dir.file("qwen.gguf");
  ModelConfig config = llama_config();
  config.model_type = "qwen2";
  config.attention_bias = true;
  const auto tensors = llama_tensors(config, 4);
  write_gguf_model(path, config, tensors, nullptr, DType::F32);
  const GgufContents c = read_gguf(path);
  EXPECT_EQ(c.metadata.get<std::string>("general.architecture"), "qwen2");
  EXPECT_EQ(c.metadata.get<uint32_t>("qwen2.block_count"), 2u);
  const auto hf = by_name(tensors);
  EXPECT_EQ(c.tensor(*c.find("blk.0.attn_q.weight")).to_f32_vector(),
            hf.at("model.layers.0.self_attn.q_proj.weight").to_f32_vector());
  const GgufModel m = read_gguf_model(path);
  EXPECT_EQ(m.config, config);
  expect_bit_identical(tensors, m.tensors);
}

TEST(GgufModel, HalfPrecisionMatricesFullPrecisionVectors) {
  for (const DType dtype : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    TempDir dir;
    const auto path = dir.file("half.gguf");
    const ModelConfig config = llama_config();
    const auto tensors = llama_tensors(config, 5);
    write_gguf_model(path, config, tensors, nullptr, dtype);
    EXPECT_EQ(read_gguf(path).metadata.get<uint32_t>("general.file_type"), dtype == DType::F16 ? 1u : 32u);
    const GgufModel m = read_gguf_model(path);
    EXPECT_EQ(m.config, config);
    const auto got = by_name(m.tensors);
    for (const auto& t : tensors) {
      SCOPED_TRACE(t.name);
      const Tensor& r = got.at(t.name);
      const bool matrix = t.tensor.ndim() == 2;
      EXPECT_EQ(r.dtype(), matrix ? dtype : DType::F32);
      const float* x = t.tensor.data<float>();
      const auto y = r.to_f32_vector();
      for (int64_t i = 0; i < t.tensor.numel(); ++i) {
        const float rounded =
            !matrix ? x[i] : dtype == DType::F16 ? f16_to_f32(f32_to_f16(x[i])) : bf16_to_f32(f32_to_bf16(x[i]));
        ASSERT_EQ(y[i], rounded) << i;
      }
    }
    // Half-precision input round-trips bit for bit.
    std::vector<NamedTensor> half;
    for (const auto& t : tensors) half.push_back({t.name, t.tensor.ndim() == 2 ? t.tensor.cast(dtype) : t.tensor});
    const auto path2 = dir.file("half2.gguf");
    write_gguf_model(path2, config, half, nullptr, dtype);
    expect_bit_identical(half, read_gguf_model(path2).tensors);
  }
}

TEST(GgufModel, Gpt2RoundTripTransposesConv1D) {
  TempDir dir;
  const auto path = dir.file("gpt2.gguf");
  const ModelConfig config = gpt2_config();
  const auto tensors = gpt2_tensors(config, 6);
  const Vocab vocab = bpe_vocab();
  write_gguf_model(path, config, tensors, &vocab, DType::F32);

  const GgufContents c = read_gguf(path);
  EXPECT_EQ(c.metadata.get<std::string>("general.architecture"), "gpt2");
  EXPECT_EQ(c.metadata.get<float>("gpt2.attention.layer_norm_epsilon"), 1e-5f);
  EXPECT_FALSE(c.metadata.contains("gpt2.rope.freq_base"));
  EXPECT_EQ(c.metadata.get<std::string>("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(c.metadata.get<std::string>("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(c.metadata.get<std::vector<std::string>>("tokenizer.ggml.merges"), vocab.merges);
  EXPECT_FALSE(c.metadata.contains("tokenizer.ggml.scores"));
  EXPECT_NE(c.find("position_embd.weight"), nullptr);
  EXPECT_EQ(c.find("output.weight"), nullptr);  // tied
  // HF c_attn [in 12, out 36] is stored [out 36, in 12] row-major.
  const auto hf = by_name(tensors);
  const GgufTensorInfo& qkv = *c.find("blk.1.attn_qkv.weight");
  EXPECT_EQ(qkv.shape, (Shape{36, 12}));
  EXPECT_EQ(qkv.ggml_dims, (std::vector<uint64_t>{12, 36}));
  const auto stored = c.tensor(qkv).to_f32_vector();
  const auto original = hf.at("transformer.h.1.attn.c_attn.weight").to_f32_vector();
  for (int64_t o = 0; o < 36; ++o)
    for (int64_t i = 0; i < 12; ++i) ASSERT_EQ(stored[o * 12 + i], original[i * 36 + o]);
  EXPECT_EQ(c.find("blk.0.ffn_up.weight")->shape, (Shape{48, 12}));
  EXPECT_EQ(c.find("blk.0.ffn_down.weight")->shape, (Shape{12, 48}));

  const GgufModel m = read_gguf_model(path);
  EXPECT_EQ(m.config, config);
  ASSERT_TRUE(m.vocab);
  expect_same_vocab(*m.vocab, vocab);
  expect_bit_identical(tensors, m.tensors);
}

TEST(GgufModel, Gpt2HubNamesUntiedHeadAndMaskBuffers) {
  TempDir dir;
  const auto path = dir.file("gpt2.gguf");
  ModelConfig config = gpt2_config();
  config.tie_embeddings = false;
  auto tensors = gpt2_tensors(config, 7, "");  // the Hub's safetensors names: no "transformer."
  tensors.push_back({"h.0.attn.bias", Tensor::zeros(DType::F32, {1, 1, 16, 16})});  // causal mask buffer
  write_gguf_model(path, config, tensors, nullptr, DType::F32);
  const GgufModel m = read_gguf_model(path);
  EXPECT_EQ(m.config, config);
  tensors.pop_back();
  for (auto& t : tensors)
    if (t.name != "lm_head.weight") t.name = "transformer." + t.name;
  expect_bit_identical(tensors, m.tensors);
}

TEST(GgufModel, ShortVocabIsPaddedForLlamaCpp) {
  TempDir dir;
  const auto path = dir.file("pad.gguf");
  const ModelConfig config = llama_config();
  Vocab vocab = spm_vocab();
  vocab.tokens.resize(9);
  vocab.scores.resize(9);
  vocab.types.resize(9);
  write_gguf_model(path, config, llama_tensors(config, 8), &vocab, DType::F32);
  const GgufModel m = read_gguf_model(path);
  ASSERT_TRUE(m.vocab);
  ASSERT_EQ(m.vocab->tokens.size(), 11u);
  EXPECT_EQ(m.vocab->tokens[10], "[PAD10]");
  EXPECT_EQ(m.vocab->types[9], TokenType::Unused);
  EXPECT_EQ(m.vocab->scores[9], -1000.0f);
}

TEST(GgufModel, NameMapping) {
  EXPECT_EQ(hf_to_gguf_tensor_name("model.layers.12.mlp.gate_proj.weight", Architecture::Llama),
            "blk.12.ffn_gate.weight");
  EXPECT_EQ(hf_to_gguf_tensor_name("model.layers.3.self_attn.o_proj.bias", Architecture::Llama),
            "blk.3.attn_output.bias");
  EXPECT_EQ(hf_to_gguf_tensor_name("lm_head.weight", Architecture::Llama), "output.weight");
  EXPECT_EQ(hf_to_gguf_tensor_name("h.0.mlp.c_proj.weight", Architecture::GPT2), "blk.0.ffn_down.weight");
  EXPECT_EQ(hf_to_gguf_tensor_name("transformer.wpe.weight", Architecture::GPT2), "position_embd.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.7.attn_qkv.bias", Architecture::GPT2), "transformer.h.7.attn.c_attn.bias");
  EXPECT_EQ(gguf_to_hf_tensor_name("output_norm.weight", Architecture::Llama), "model.norm.weight");
  EXPECT_EQ(hf_to_gguf_tensor_name("model.layers.01.mlp.up_proj.weight", Architecture::Llama), std::nullopt);
  EXPECT_EQ(hf_to_gguf_tensor_name("model.layers.0.self_attn.rotary_emb.inv_freq", Architecture::Llama),
            std::nullopt);
  EXPECT_EQ(gguf_to_hf_tensor_name("rope_freqs.weight", Architecture::Llama), std::nullopt);
}

// ---- errors

TEST(GgufModelErrors, WriterRejectsBadInput) {
  TempDir dir;
  const auto path = dir.file("bad.gguf");
  const ModelConfig config = llama_config();
  auto tensors = llama_tensors(config, 9);

  auto missing = tensors;
  std::erase_if(missing, [](const NamedTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
  expect_error([&] { write_gguf_model(path, config, missing, nullptr, DType::F32); },
               {path, "missing tensor \"model.layers.1.mlp.up_proj.weight\" (GGUF blk.1.ffn_up.weight)"});

  auto unknown = tensors;
  unknown.push_back({"model.layers.0.mlp.extra.weight", Tensor::zeros(DType::F32, {2})});
  expect_error([&] { write_gguf_model(path, config, unknown, nullptr, DType::F32); },
               {path, "\"model.layers.0.mlp.extra.weight\" is not a known llama weight name"});

  auto beyond = tensors;
  beyond.push_back({"model.layers.2.input_layernorm.weight", Tensor::zeros(DType::F32, {16})});
  expect_error([&] { write_gguf_model(path, config, beyond, nullptr, DType::F32); },
               {"is in layer 2 but the model has 2 layers"});

  auto misshapen = tensors;
  misshapen[2].tensor = Tensor::zeros(DType::F32, {15, 16});
  expect_error([&] { write_gguf_model(path, config, misshapen, nullptr, DType::F32); },
               {misshapen[2].name, "has shape [15, 16], expected [16, 16]"});

  auto twice = tensors;
  twice.push_back(tensors[0]);
  expect_error([&] { write_gguf_model(path, config, twice, nullptr, DType::F32); }, {"are the same weight"});

  expect_error([&] { write_gguf_model(path, config, tensors, nullptr, DType::F8_E4M3); },
               {"must be F32, F16 or BF16, got F8_E4M3"});

  ModelConfig bad = config;
  bad.n_kv_heads = 3;
  expect_error([&] { write_gguf_model(path, bad, tensors, nullptr, DType::F32); }, {path, "does not divide"});

  Vocab vocab = spm_vocab();
  vocab.bos_id = 99;
  expect_error([&] { write_gguf_model(path, config, tensors, &vocab, DType::F32); },
               {"bos_token_id 99 is not a token id"});
  EXPECT_TRUE(dir.entries().empty());
}

// A llama.cpp-style file with one thing changed.
void write_variant(const std::string& path, const std::function<void(GgufMetadata&, std::vector<NamedTensor>&)>& edit) {
  const ModelConfig config = llama_config();
  const auto hf = llama_tensors(config, 10);
  GgufMetadata m = gguf_model_metadata(config, nullptr, DType::F32, "x");
  std::vector<NamedTensor> tensors;
  for (const auto& t : hf)
    tensors.push_back({*hf_to_gguf_tensor_name(t.name, Architecture::Llama), t.tensor});
  edit(m, tensors);
  write_gguf(path, m, tensors);
}

TEST(GgufModelErrors, ReaderNamesWhatIsWrong) {
  TempDir dir;
  const auto path = dir.file("v.gguf");
  write_variant(path, [](GgufMetadata&, std::vector<NamedTensor>&) {});
  EXPECT_NO_THROW(read_gguf_model(path));

  write_variant(path, [](GgufMetadata& m, std::vector<NamedTensor>&) { m.set("general.architecture", "mamba"); });
  expect_error([&] { read_gguf_model(path); }, {path, "general.architecture \"mamba\" is not supported"});

  write_variant(path, [](GgufMetadata& m, std::vector<NamedTensor>&) { m.erase("llama.block_count"); });
  expect_error([&] { read_gguf_model(path); }, {path, "metadata key \"llama.block_count\" is missing"});

  write_variant(path, [](GgufMetadata& m, std::vector<NamedTensor>&) { m.set("llama.embedding_length", "16"); });
  expect_error([&] { read_gguf_model(path); },
               {path, "\"llama.embedding_length\" has type string, expected an unsigned integer"});

  write_variant(path, [](GgufMetadata& m, std::vector<NamedTensor>&) { m.erase("general.architecture"); });
  expect_error([&] { read_gguf_model(path); }, {"\"general.architecture\" is missing"});

  write_variant(path, [](GgufMetadata&, std::vector<NamedTensor>& t) {
    std::erase_if(t, [](const NamedTensor& x) { return x.name == "blk.1.ffn_up.weight"; });
  });
  expect_error([&] { read_gguf_model(path); }, {path, "missing tensor blk.1.ffn_up.weight"});

  write_variant(path, [](GgufMetadata&, std::vector<NamedTensor>& t) {
    t.push_back({"rope_factors_long.weight", Tensor::zeros(DType::F32, {2})});
  });
  expect_error([&] { read_gguf_model(path); }, {"\"rope_factors_long.weight\" is not a known llama tensor name"});

  write_variant(path, [](GgufMetadata&, std::vector<NamedTensor>& t) {
    t.push_back({"rope_freqs.weight", Tensor::zeros(DType::F32, {2})});
  });
  expect_error([&] { read_gguf_model(path); }, {"rope_freqs holds 0, not a positive frequency divisor"});

  write_variant(path, [](GgufMetadata&, std::vector<NamedTensor>& t) {
    t.push_back({"blk.5.attn_norm.weight", Tensor::zeros(DType::F32, {16})});
  });
  expect_error([&] { read_gguf_model(path); }, {"\"blk.5.attn_norm.weight\" is in block 5 but block_count is 2"});

  write_variant(path, [](GgufMetadata&, std::vector<NamedTensor>& t) {
    for (auto& x : t)
      if (x.name == "blk.0.ffn_gate.weight") x.tensor = Tensor::zeros(DType::F32, {16, 24});
  });
  expect_error([&] { read_gguf_model(path); }, {"\"blk.0.ffn_gate.weight\" has shape [16, 24] (row-major), expected [24, 16]"});

  write_variant(path, [](GgufMetadata& m, std::vector<NamedTensor>&) { m.set("llama.rope.dimension_count", uint32_t{2}); });
  expect_error([&] { read_gguf_model(path); }, {"partial RoPE is not supported"});

  write_variant(path, [](GgufMetadata& m, std::vector<NamedTensor>&) {
    m.set("tokenizer.ggml.model", "bert");
    m.set("tokenizer.ggml.tokens", std::vector<std::string>(11, "x"));
  });
  expect_error([&] { read_gguf_model(path); }, {"tokenizer.ggml.model \"bert\" is not supported"});
}

TEST(GgufModelErrors, BlockTypesWithoutCodecAreNotSupported) {
  TempDir dir;
  const auto path = dir.file("q.gguf");
  ModelConfig config = llama_config();
  config.hidden_size = 32;
  config.head_dim = 8;
  const auto hf = llama_tensors(config, 11);
  const GgufMetadata m = gguf_model_metadata(config, nullptr, DType::F32, "q");
  std::vector<GgufTensorSpec> plan;
  for (const auto& t : hf) {
    const std::string name = *hf_to_gguf_tensor_name(t.name, Architecture::Llama);
    // [24, 32]: each row is one IQ4_NL block (a type without a codec here).
    plan.push_back({name, name == "blk.0.ffn_gate.weight" ? GgmlType::IQ4_NL : GgmlType::F32, t.tensor.shape()});
  }
  GgufWriter w(path, m, plan);
  for (size_t i = 0; i < hf.size(); ++i) {
    if (plan[i].type == GgmlType::IQ4_NL)
      w.write_raw(plan[i].name, std::vector<std::byte>(24 * 18));
    else
      w.write(plan[i].name, hf[i].tensor);
  }
  w.finish();
  expect_error([&] { read_gguf_model(path); }, {path, "\"blk.0.ffn_gate.weight\" is IQ4_NL, which is not supported yet"});
}

// ---- writer failures

TEST(GgufModelErrors, FailedWritesLeaveNothingBehind) {
  TempDir dir;
  const ModelConfig config = llama_config();
  const auto tensors = llama_tensors(config, 12);

  const auto no_dir = dir.file("no/such/dir/out.gguf");
  expect_error([&] { write_gguf_model(no_dir, config, tensors, nullptr, DType::F32); }, {no_dir});
  EXPECT_TRUE(dir.entries().empty());

  // A tensor with no bytes is found only when the writer reaches it, after
  // the header and earlier tensors went to the temporary file.
  const auto path = dir.file("out.gguf");
  write_bytes(path, Bytes(5, std::byte{7}));  // an earlier output, to be left alone
  auto broken = tensors;
  broken.back().tensor = Tensor::view(DType::F32, broken.back().tensor.shape(), nullptr, nullptr);
  expect_error([&] { write_gguf_model(path, config, broken, nullptr, DType::F32); }, {path, "has no data"});
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.gguf"});
  EXPECT_EQ(read_bytes(path), Bytes(5, std::byte{7}));
}

TEST(GgufWriterFailure, ProducerThrowsMidwayOrFinishesEarly) {
  TempDir dir;
  const auto path = dir.file("out.gguf");
  EXPECT_THROW(
      {
        GgufWriter w(path, {}, {{"a", GgmlType::F32, {4}}, {"b", GgmlType::F32, {4}}});
        w.write("a", Tensor::zeros(DType::F32, {4}));
        throw std::runtime_error("quantizer failed");
      },
      std::runtime_error);
  EXPECT_TRUE(dir.entries().empty());
  {
    GgufWriter w(path, {}, {{"a", GgmlType::F32, {4}}, {"b", GgmlType::F32, {4}}});
    w.write("a", Tensor::zeros(DType::F32, {4}));
    expect_error([&] { w.finish(); }, {path, "only 1 of 2"});
    expect_error([&] { w.write("c", Tensor::zeros(DType::F32, {4})); }, {"\"c\" written where \"b\" was planned"});
    expect_error([&] { w.write("b", Tensor::zeros(DType::F32, {5})); }, {"shape [5] but was planned as [4]"});
    expect_error([&] { w.write_raw("b", std::vector<std::byte>(3)); }, {"3 raw bytes given", "needs 16"});
  }
  EXPECT_TRUE(dir.entries().empty());
  expect_error([&] { GgufWriter w(path, {}, {{"a", GgmlType::F32, {2}}, {"a", GgmlType::F32, {2}}}); },
               {path, "duplicate tensor name \"a\""});
  expect_error([&] { GgufWriter w(path, {}, {{std::string(64, 'x'), GgmlType::F32, {2}}}); },
               {"is 64 bytes; GGUF readers accept at most 63"});
  expect_error([&] { GgufWriter w(path, {}, {{"a", GgmlType::F32, {1, 1, 1, 1, 1}}}); }, {"more than 4 dimensions"});
  GgufMetadata bad_alignment;
  bad_alignment.add("general.alignment", uint32_t{48});
  expect_error([&] { GgufWriter w(path, bad_alignment, {}); }, {"general.alignment is 48; it must be a power of two"});
  EXPECT_TRUE(dir.entries().empty());
}

// ---- stories260K, a real checkpoint

std::string sha256_of(const std::string& path) {
  std::string out;
  FILE* p = ::popen(("sha256sum '" + path + "'").c_str(), "r");
  if (!p) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  return out.substr(0, 64);
}

class Stories260K : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string data = QF_SHARED_DATA;
    path_ = data + "/stories260K/stories260K.bin";
    if (!std::filesystem::exists(path_)) GTEST_SKIP() << path_ << " is absent";
    std::string expected;
    std::ifstream sums(data + "/SHA256SUMS");
    for (std::string line; std::getline(sums, line);) {
      std::istringstream fields(line);
      std::string hash, name;
      fields >> hash >> name;
      if (name == "./stories260K/stories260K.bin") expected = hash;
    }
    ASSERT_FALSE(expected.empty()) << "no SHA256SUMS entry for stories260K.bin";
    ASSERT_EQ(sha256_of(path_), expected) << path_ << " does not match SHA256SUMS";
    model_ = read_llama2c(path_);
    const Llama2cConfig& l = model_.config;
    config_.arch = Architecture::Llama;
    config_.model_type = "llama";
    config_.vocab_size = l.vocab_size;
    config_.hidden_size = l.dim;
    config_.intermediate_size = l.hidden_dim;
    config_.n_layers = l.n_layers;
    config_.n_heads = l.n_heads;
    config_.n_kv_heads = l.n_kv_heads;
    config_.head_dim = l.head_size();
    config_.max_positions = l.seq_len;
    config_.norm_eps = 1e-5f;
    config_.rope_theta = 10000.0f;
    config_.tie_embeddings = l.shared_classifier;
    config_.bos_token_id = 1;
    config_.eos_token_id = 2;
  }
  std::string path_;
  Llama2cModel model_;
  ModelConfig config_;
};

TEST_F(Stories260K, F32RoundTripIsIdentical) {
  TempDir dir;
  const auto out = dir.file("stories260K.gguf");
  write_gguf_model(out, config_, model_.tensors, nullptr, DType::F32);
  const GgufModel m = read_gguf_model(out);
  EXPECT_EQ(m.config, config_);
  expect_bit_identical(model_.tensors, m.tensors);
  const GgufContents c = read_gguf(out);
  EXPECT_EQ(c.tensors.size(), 1u + 5 * 9 + 1);  // tied classifier: no output.weight
  EXPECT_EQ(c.find("blk.4.attn_k.weight")->shape, (Shape{32, 64}));
  EXPECT_EQ(c.find("blk.0.ffn_gate.weight")->shape, (Shape{172, 64}));
}

TEST_F(Stories260K, F16ValuesAreTheF16RoundingOfTheOriginals) {
  TempDir dir;
  const auto out = dir.file("stories260K-f16.gguf");
  write_gguf_model(out, config_, model_.tensors, nullptr, DType::F16);
  const GgufModel m = read_gguf_model(out);
  EXPECT_EQ(m.config, config_);
  const auto got = by_name(m.tensors);
  ASSERT_EQ(got.size(), model_.tensors.size());
  for (const auto& t : model_.tensors) {
    SCOPED_TRACE(t.name);
    const Tensor& r = got.at(t.name);
    ASSERT_EQ(r.shape(), t.tensor.shape());
    EXPECT_EQ(r.dtype(), t.tensor.ndim() == 2 ? DType::F16 : DType::F32);
    const float* x = t.tensor.data<float>();
    const auto y = r.to_f32_vector();
    for (int64_t i = 0; i < t.tensor.numel(); ++i) {
      const float expected = t.tensor.ndim() == 2 ? f16_to_f32(f32_to_f16(x[i])) : x[i];
      ASSERT_EQ(y[i], expected) << i;
    }
  }
}

}  // namespace
}  // namespace qf::formats

namespace qf::formats {
namespace {

// llama2.c keeps Meta's interleaved q/k rows, which is exactly GGUF's layout:
// once its q/k are converted to HF rotate_half (as model::load_model does),
// the GGUF file holds llama2.c's q/k bytes unchanged.
TEST_F(Stories260K, Llama2cQkRowsAreGgufLayoutOnceConvertedToHf) {
  std::vector<NamedTensor> hf;
  for (const auto& t : model_.tensors) {
    Tensor x = t.tensor;
    if (t.name.ends_with("self_attn.q_proj.weight")) x = rope_rows_interleaved_to_half(x, config_.n_heads);
    if (t.name.ends_with("self_attn.k_proj.weight")) x = rope_rows_interleaved_to_half(x, config_.n_kv_heads);
    hf.push_back({t.name, x});
  }
  TempDir dir;
  const auto out = dir.file("stories260K.gguf");
  write_gguf_model(out, config_, hf, nullptr, DType::F32);
  const GgufContents c = read_gguf(out);
  const auto original = by_name(model_.tensors);
  for (int l = 0; l < 5; ++l) {
    for (const auto& [gguf, name] : {std::pair{"attn_q", "q_proj"}, std::pair{"attn_k", "k_proj"}}) {
      const std::string g = fmt::format("blk.{}.{}.weight", l, gguf);
      SCOPED_TRACE(g);
      const Tensor stored = c.tensor(*c.find(g));
      const Tensor& l2c = original.at(fmt::format("model.layers.{}.self_attn.{}.weight", l, name));
      ASSERT_EQ(stored.shape(), l2c.shape());
      EXPECT_EQ(std::memcmp(stored.bytes(), l2c.bytes(), l2c.nbytes()), 0);
    }
  }
  expect_bit_identical(hf, read_gguf_model(out).tensors);
}

}  // namespace
}  // namespace qf::formats
