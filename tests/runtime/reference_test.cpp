// The fp32 forward pass against an independent numpy implementation
// (reference_forward.py) on small random Hugging Face checkpoints, and the KV
// cache against single batched passes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "../model/test_models.h"
#include "model/model.h"
#include "runtime/runtime.h"
#include "numpy_python.h"

namespace qf::runtime {
namespace {

using model::testing::expect_error;
using model::testing::TempDir;

// Largest deviation relative to the largest reference logit.
double relative_error(const float* got, const float* want, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

double relative_error(const Tensor& got, const std::vector<float>& want) {
  EXPECT_EQ(static_cast<size_t>(got.numel()), want.size());
  return relative_error(got.data<float>(), want.data(), std::min(want.size(), static_cast<size_t>(got.numel())));
}

using test::numpy_python;

// Logits [tokens, vocab] computed by reference_forward.py on the HF folder.
std::vector<float> numpy_logits(const std::string& folder, const std::vector<int32_t>& tokens, int64_t vocab) {
  std::string list;
  for (size_t i = 0; i < tokens.size(); ++i) list += (i ? "," : "") + std::to_string(tokens[i]);
  const std::string out = folder + "/numpy_logits.f32";
  const std::string command = numpy_python() + " '" + std::string(QF_SOURCE_DIR) +
                              "/tests/runtime/reference_forward.py' '" + folder + "' " + list + " '" + out + "' 2>&1";
  const auto [status, output] = test::run_shell(command);
  EXPECT_EQ(status, 0) << command << "\n" << output;
  std::vector<float> logits(tokens.size() * static_cast<size_t>(vocab));
  std::ifstream f(out, std::ios::binary);
  f.read(reinterpret_cast<char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
  EXPECT_TRUE(f.good()) << "reading " << out;
  return logits;
}

class NumpyReference : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(numpy_python().empty())
        << "no python3 with numpy found (scripts/install-deps.sh installs Debian's python3-numpy)";
  }

  // Loads the folder, runs all positions, compares with numpy.
  void compare(const std::string& folder, const std::vector<int32_t>& tokens, int n_threads = 2) {
    const model::Model m = model::load_model(folder);
    Runtime rt(m, {.n_threads = n_threads});
    const Tensor logits = rt.forward(tokens);
    ASSERT_EQ(logits.shape(), (Shape{static_cast<int64_t>(tokens.size()), m.config.vocab_size}));
    const auto want = numpy_logits(folder, tokens, m.config.vocab_size);
    const double rel = relative_error(logits, want);
    EXPECT_LT(rel, 1e-4) << folder;
    double max_logit = 0;
    for (float v : want) max_logit = std::max(max_logit, std::fabs(static_cast<double>(v)));
    EXPECT_GT(max_logit, 1.0) << "logits too small for a meaningful comparison";
    ::testing::Test::RecordProperty("relative_error", std::to_string(rel));
    std::printf("  %s: %zu positions, relative error %.2e (max |logit| %.2f)\n", m.config.model_type.c_str(),
                tokens.size(), rel, max_logit);
  }
};

TEST_F(NumpyReference, LlamaGqaWithAttentionBias) {
  TempDir dir;
  model::testing::LlamaDims d;  // hidden 64, 4 heads, 2 kv heads, 3 layers, inter 96, vocab 101
  model::testing::write_hf_folder(dir.str(), model::testing::llama_config_json(d),
                                  model::testing::random_llama_tensors(d, 21));
  compare(dir.str(), model::testing::random_tokens(40, 101, 22));
}

TEST_F(NumpyReference, Qwen2TiedMultiQuery) {
  TempDir dir;
  model::testing::LlamaDims d;
  d.kv_heads = 1;
  d.tied = true;
  d.bias = true;  // qwen2 always has q/k/v biases
  model::testing::write_hf_folder(dir.str(), model::testing::llama_config_json(d, "qwen2"),
                                  model::testing::random_llama_tensors(d, 23));
  compare(dir.str(), model::testing::random_tokens(25, 101, 24));
}

TEST_F(NumpyReference, MistralSlidingWindowBf16) {
  TempDir dir;
  model::testing::LlamaDims d;
  d.bias = false;
  d.head_dim = 8;  // head_dim * heads != hidden
  model::testing::write_hf_folder(dir.str(), model::testing::llama_config_json(d, "mistral", ", \"sliding_window\": 6"),
                                  model::testing::random_llama_tensors(d, 25), DType::BF16);
  compare(dir.str(), model::testing::random_tokens(30, 101, 26));
}

TEST_F(NumpyReference, LargerLlamaExercisesThreadedPaths) {
  TempDir dir;
  model::testing::LlamaDims d;
  d.hidden = 256;
  d.inter = 384;
  d.heads = 8;
  d.kv_heads = 4;
  d.head_dim = 32;
  d.layers = 2;
  d.vocab = 300;
  model::testing::write_hf_folder(dir.str(), model::testing::llama_config_json(d),
                                  model::testing::random_llama_tensors(d, 27));
  const auto tokens = model::testing::random_tokens(120, 300, 28);
  compare(dir.str(), tokens, 3);
  // Same result single-threaded (up to BLAS's thread-dependent blocking).
  const model::Model m = model::load_model(dir.str());
  Runtime one(m, {.n_threads = 1}), many(m, {.n_threads = 4});
  EXPECT_LT(relative_error(one.forward(tokens).data<float>(), many.forward(tokens).data<float>(), 120 * 300), 1e-5);
}

TEST_F(NumpyReference, Gpt2) {
  TempDir dir;
  model::testing::Gpt2Dims d;  // hidden 48, 4 heads, 2 layers, vocab 97, n_positions 64
  model::testing::write_hf_folder(dir.str(), model::testing::gpt2_config_json(d),
                                  model::testing::random_gpt2_tensors(d, 29));
  compare(dir.str(), model::testing::random_tokens(64, 97, 30));  // every learned position
}

TEST_F(NumpyReference, Gpt2WithTransformerPrefixF16) {
  TempDir dir;
  model::testing::Gpt2Dims d;
  model::testing::write_hf_folder(dir.str(), model::testing::gpt2_config_json(d),
                                  model::testing::random_gpt2_tensors(d, 31, "transformer."), DType::F16);
  compare(dir.str(), model::testing::random_tokens(33, 97, 32));
}

// ---- KV cache ---------------------------------------------------------------

model::Model small_model(const TempDir& dir, bool gpt2, const std::string& type = "llama", const std::string& extra = "") {
  if (gpt2) {
    model::testing::Gpt2Dims d;
    model::testing::write_hf_folder(dir.str(), model::testing::gpt2_config_json(d),
                                    model::testing::random_gpt2_tensors(d, 41));
  } else {
    model::testing::LlamaDims d;
    d.bias = type != "mistral";
    model::testing::write_hf_folder(dir.str(), model::testing::llama_config_json(d, type, extra),
                                    model::testing::random_llama_tensors(d, 42));
  }
  return model::load_model(dir.str());
}

// One batched pass over all tokens vs a prefill of `prefill` tokens followed
// by chunks of `step` tokens; every position's logits must agree.
void check_incremental(const model::Model& m, int64_t total, int64_t prefill, int64_t step) {
  const auto tokens = model::testing::random_tokens(total, static_cast<int32_t>(m.config.vocab_size), 43);
  const int64_t V = m.config.vocab_size;
  Runtime full(m, {.n_threads = 2});
  const Tensor all = full.forward(tokens);
  EXPECT_EQ(full.n_past(), total);

  Runtime inc(m, {.n_threads = 2});
  int64_t pos = 0;
  while (pos < total) {
    const int64_t n = std::min(pos == 0 ? prefill : step, total - pos);
    const Tensor part = inc.forward(std::span(tokens).subspan(static_cast<size_t>(pos), static_cast<size_t>(n)));
    ASSERT_EQ(part.dim(0), n);
    const double rel = relative_error(part.data<float>(), all.data<float>() + pos * V, static_cast<size_t>(n * V));
    EXPECT_LT(rel, 1e-5) << m.config.model_type << " positions " << pos << ".." << pos + n - 1;
    pos += n;
    EXPECT_EQ(inc.n_past(), pos);
  }
}

TEST(KVCache, LlamaPrefillThenDecodeMatchesOneBatch) {
  TempDir dir;
  const model::Model m = small_model(dir, false);
  check_incremental(m, 40, 24, 1);
  check_incremental(m, 40, 5, 3);
}

TEST(KVCache, MistralSlidingWindowDecode) {
  TempDir dir;
  const model::Model m = small_model(dir, false, "mistral", ", \"sliding_window\": 4");
  check_incremental(m, 30, 10, 1);
}

TEST(KVCache, Gpt2PrefillThenDecodeMatchesOneBatch) {
  TempDir dir;
  const model::Model m = small_model(dir, true);
  check_incremental(m, 64, 20, 1);
  check_incremental(m, 64, 1, 7);
}

TEST(KVCache, LastLogitsAndTruncate) {
  TempDir dir;
  const model::Model m = small_model(dir, false);
  const int64_t V = m.config.vocab_size;
  const auto tokens = model::testing::random_tokens(12, 101, 44);
  Runtime rt(m, {.n_threads = 1});
  const Tensor all = rt.forward(tokens);
  rt.reset();
  EXPECT_EQ(rt.n_past(), 0);
  const Tensor last = rt.forward(tokens, Logits::Last);
  ASSERT_EQ(last.shape(), (Shape{1, V}));
  EXPECT_LT(relative_error(last.data<float>(), all.data<float>() + 11 * V, static_cast<size_t>(V)), 1e-6);
  // Forget the last 4 positions and run them again.
  rt.truncate(8);
  EXPECT_EQ(rt.n_past(), 8);
  const Tensor again = rt.forward(std::span(tokens).subspan(8));
  EXPECT_LT(relative_error(again.data<float>(), all.data<float>() + 8 * V, static_cast<size_t>(4 * V)), 1e-6);
  expect_error([&] { rt.truncate(13); }, {"truncate"});
}

TEST(Runtime, ErrorsLeaveTheCacheUnchanged) {
  TempDir dir;
  const model::Model m = small_model(dir, false);
  Runtime rt(m, {.n_threads = 1, .context = 10});
  EXPECT_EQ(rt.context(), 10);
  rt.forward(std::vector<int32_t>{1, 2, 3});
  expect_error([&] { rt.forward(std::vector<int32_t>{4, 101}); }, {"token id 101", "batch index 1", "[0, 101)"});
  expect_error([&] { rt.forward(std::vector<int32_t>{-1}); }, {"token id -1"});
  expect_error([&] { rt.forward(std::vector<int32_t>(8, 5)); }, {"8 new tokens after 3", "context of 10"});
  expect_error([&] { rt.forward(std::vector<int32_t>{}); }, {"at least one token"});
  EXPECT_EQ(rt.n_past(), 3);
  EXPECT_NO_THROW(rt.forward(std::vector<int32_t>(7, 5)));
  EXPECT_EQ(rt.n_past(), 10);
}

TEST(Runtime, ContextDefaultsAndLimits) {
  TempDir a, b;
  const model::Model llama = small_model(a, false);
  EXPECT_EQ(Runtime(llama).context(), 128);  // max_position_embeddings
  EXPECT_EQ(Runtime(llama, {.context = 300}).context(), 300);  // RoPE can go past it
  const model::Model gpt2 = small_model(b, true);
  expect_error([&] { Runtime(gpt2, {.context = 65}); }, {"context 65", "64 learned positions"});

  model::Model scaled = llama;
  scaled.config.rope_scaling = {{"rope_type", "mrope"}, {"factor", 2.0}};
  expect_error([&] { Runtime r(scaled); }, {"rope_scaling", "mrope", "not supported"});
}

}  // namespace
}  // namespace qf::runtime
