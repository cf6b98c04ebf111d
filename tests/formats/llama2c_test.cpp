#include "formats/llama2c.h"

#include <gtest/gtest.h>

#include "shared_data.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

// Expected HF names and shapes in llama2.c file order, written out
// independently of the reader.
std::vector<std::pair<std::string, Shape>> expected_layout(int64_t dim, int64_t hidden, int layers, int64_t kv_dim,
                                                          int64_t vocab, bool shared) {
  std::vector<std::pair<std::string, Shape>> out = {{"model.embed_tokens.weight", {vocab, dim}}};
  const std::vector<std::pair<std::string, Shape>> kinds = {
      {"input_layernorm.weight", {dim}},           {"self_attn.q_proj.weight", {dim, dim}},
      {"self_attn.k_proj.weight", {kv_dim, dim}},  {"self_attn.v_proj.weight", {kv_dim, dim}},
      {"self_attn.o_proj.weight", {dim, dim}},     {"post_attention_layernorm.weight", {dim}},
      {"mlp.gate_proj.weight", {hidden, dim}},     {"mlp.down_proj.weight", {dim, hidden}},
      {"mlp.up_proj.weight", {hidden, dim}}};
  for (const auto& [suffix, shape] : kinds)
    for (int i = 0; i < layers; ++i) out.push_back({"model.layers." + std::to_string(i) + "." + suffix, shape});
  out.push_back({"model.norm.weight", {dim}});
  if (!shared) out.push_back({"lm_head.weight", {vocab, dim}});
  return out;
}


TEST(Llama2cStories260K, ConfigAndEveryTensorShape) {
  QF_REQUIRE_SHARED_DATA("stories260K/stories260K.bin");
  const std::string path = qf::test::shared_data_path("stories260K/stories260K.bin");

  const Llama2cModel m = read_llama2c(path);
  EXPECT_EQ(m.config.dim, 64);
  EXPECT_EQ(m.config.hidden_dim, 172);
  EXPECT_EQ(m.config.n_layers, 5);
  EXPECT_EQ(m.config.n_heads, 8);
  EXPECT_EQ(m.config.n_kv_heads, 4);
  EXPECT_EQ(m.config.vocab_size, 512);
  EXPECT_EQ(m.config.seq_len, 512);
  EXPECT_EQ(m.config.head_size(), 8);
  EXPECT_EQ(m.config.kv_dim(), 32);
  EXPECT_TRUE(m.config.shared_classifier);
  EXPECT_TRUE(m.config.has_rope_tables);

  const auto expected = expected_layout(64, 172, 5, 32, 512, true);
  ASSERT_EQ(m.tensors.size(), expected.size());
  int64_t params = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(m.tensors[i].name, expected[i].first);
    EXPECT_EQ(m.tensors[i].tensor.shape(), expected[i].second) << expected[i].first;
    EXPECT_EQ(m.tensors[i].tensor.dtype(), DType::F32);
    EXPECT_FALSE(m.tensors[i].tensor.writable()) << "should be a view into the mapping";
    params += m.tensors[i].tensor.numel();
  }
  EXPECT_EQ(params, 260032);

  // The first embedding value sits right after the 28-byte header.
  const Bytes raw = read_bytes(path);
  float first;
  std::memcpy(&first, raw.data() + 28, 4);
  EXPECT_EQ(m.tensors[0].tensor.data<float>()[0], first);
  // RMSNorm gains of a trained model are positive.
  for (float g : m.tensors.at(expected.size() - 1).tensor.to_f32_vector()) EXPECT_GT(g, 0.0f);
}

// A tiny llama2.c file whose float i has the value i, so every tensor's
// position can be checked from its contents.
Bytes tiny_file(std::vector<int32_t> header, size_t floats) {
  Bytes out;
  append(out, header.data(), header.size() * 4);
  for (size_t i = 0; i < floats; ++i) {
    const float v = static_cast<float>(i);
    append(out, &v, 4);
  }
  return out;
}

// dim 8, hidden 12, 2 layers, 2 heads, 1 kv head (kv_dim 4), vocab 10, seq_len 4.
constexpr size_t kTinyWeights = 80 + 2 * (8 + 64 + 32 + 32 + 64 + 8 + 96 + 96 + 96) + 8;
constexpr size_t kTinyRope = 4 * 4;

void expect_tiny_layout(const Llama2cModel& m, bool shared, bool rope) {
  const auto expected = expected_layout(8, 12, 2, 4, 10, shared);
  ASSERT_EQ(m.tensors.size(), expected.size());
  size_t offset = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(expected[i].first);
    EXPECT_EQ(m.tensors[i].name, expected[i].first);
    ASSERT_EQ(m.tensors[i].tensor.shape(), expected[i].second);
    if (expected[i].first == "lm_head.weight" && rope) offset += kTinyRope;
    const auto values = m.tensors[i].tensor.to_f32_vector();
    EXPECT_EQ(values.front(), static_cast<float>(offset));
    EXPECT_EQ(values.back(), static_cast<float>(offset + values.size() - 1));
    offset += values.size();
  }
}

TEST(Llama2cReader, SharedClassifierWithAndWithoutRopeTables) {
  for (bool rope : {true, false}) {
    const Bytes b = tiny_file({8, 12, 2, 2, 1, 10, 4}, kTinyWeights + (rope ? kTinyRope : 0));
    const auto m = parse_llama2c(b, "tiny.bin");
    EXPECT_TRUE(m.config.shared_classifier);
    EXPECT_EQ(m.config.has_rope_tables, rope);
    expect_tiny_layout(m, true, rope);
  }
}

TEST(Llama2cReader, UnsharedClassifierFollowsTheRopeTables) {
  for (bool rope : {true, false}) {
    const Bytes b = tiny_file({8, 12, 2, 2, 1, -10, 4}, kTinyWeights + 80 + (rope ? kTinyRope : 0));
    const auto m = parse_llama2c(b, "tiny.bin");
    EXPECT_FALSE(m.config.shared_classifier);
    EXPECT_EQ(m.config.vocab_size, 10);
    expect_tiny_layout(m, false, rope);
  }
}

TEST(Llama2cHostile, ShorterThanTheHeader) {
  expect_error([] { parse_llama2c(Bytes(20), "bad.bin"); }, {"bad.bin", "20 bytes", "28-byte llama2.c header"});
}

TEST(Llama2cHostile, TruncatedWeights) {
  const Bytes b = tiny_file({8, 12, 2, 2, 1, 10, 4}, kTinyWeights - 1);
  expect_error([&] { parse_llama2c(b, "bad.bin"); }, {"bad.bin", "truncated", "dim 8"});
}

TEST(Llama2cHostile, UnexpectedSize) {
  const Bytes b = tiny_file({8, 12, 2, 2, 1, 10, 4}, kTinyWeights + 3);
  expect_error([&] { parse_llama2c(b, "bad.bin"); }, {"bad.bin", "without the RoPE tables"});
}

TEST(Llama2cHostile, ZeroOrNegativeDims) {
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int field = 0; field < 7; ++field) {
    for (int32_t bad : {0, -3}) {
      if (field == 5 && bad < 0) continue;  // a negative vocab_size is legal
      std::vector<int32_t> header = {8, 12, 2, 2, 1, 10, 4};
      header[field] = bad;
      const Bytes b = tiny_file(header, kTinyWeights);
      expect_error([&] { parse_llama2c(b, "bad.bin"); }, {"bad.bin", names[field]});
    }
  }
  const Bytes min_vocab = tiny_file({8, 12, 2, 2, 1, INT32_MIN, 4}, 0);
  expect_error([&] { parse_llama2c(min_vocab, "bad.bin"); }, {"vocab_size"});
}

TEST(Llama2cHostile, HeadsMustDivide) {
  expect_error([] { parse_llama2c(tiny_file({8, 12, 2, 3, 1, 10, 4}, kTinyWeights), "bad.bin"); },
               {"n_heads 3 does not divide dim 8"});
  expect_error([] { parse_llama2c(tiny_file({8, 12, 2, 4, 3, 10, 4}, kTinyWeights), "bad.bin"); },
               {"n_kv_heads 3 does not divide n_heads 4"});
  expect_error([] { parse_llama2c(tiny_file({8, 12, 2, 8, 1, 10, 4}, kTinyWeights), "bad.bin"); },
               {"head size 1", "even"});
}

TEST(Llama2cHostile, HugeHeaderValues) {
  // Products of these overflow 64 bits; they must be reported, not wrapped.
  const Bytes b = tiny_file({INT32_MAX - 3, INT32_MAX, INT32_MAX, 2, 1, INT32_MAX, INT32_MAX}, 4);
  expect_error([&] { parse_llama2c(b, "bad.bin"); }, {"bad.bin", "impossibly large"});
  const Bytes many_layers = tiny_file({8, 12, INT32_MAX, 2, 1, 10, 4}, kTinyWeights);
  expect_error([&] { parse_llama2c(many_layers, "bad.bin"); }, {"truncated"});
}

TEST(Llama2cHostile, VersionedExport) {
  const Bytes b = tiny_file({0x616b3432, 1, 64, 12, 2, 2, 1}, 64);
  expect_error([&] { parse_llama2c(b, "v1.bin"); }, {"v1.bin", "version 1", "legacy version 0"});
}

TEST(Llama2cHostile, FileErrorsNameThePath) {
  TempDir dir;
  const auto path = dir.file("model.bin");
  write_bytes(path, tiny_file({8, 0, 2, 2, 1, 10, 4}, 10));
  expect_error([&] { read_llama2c(path); }, {path, "hidden_dim must be positive, got 0"});
}

}  // namespace
}  // namespace qf::formats
