// Runtime::forward_batch (one decode step of K sequences, each on its own
// KVCache) against K separate single-sequence forwards: the same logits within
// 1e-5 on random Llama (grouped-query) and GPT-2 models, float and packed
// int4 weights, and on the real stories260K; K = 1 is bit-identical; every
// cache ends where the separate runs leave theirs; bad batches throw and
// leave the caches untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../model/test_models.h"
#include "core/error.h"
#include "model/model.h"
#include "model/packed_weights.h"
#include "quant/scheme.h"
#include "runtime/runtime.h"
#include "shared_data.h"

namespace qf::runtime {
namespace {

using model::Model;

float max_rel_diff(const float* a, const float* b, int64_t n) {
  float scale = 1.0f, worst = 0.0f;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(b[i]));
  for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst / scale;
}

// K sequences with prompts of different lengths, then `steps` decode steps:
// batched on one runtime's caches, and one by one on a second runtime's.
void check_batched_equals_separate(const Model& m, int K, int steps, const std::string& what) {
  Runtime batched(m, {.n_threads = 2, .context = 64});
  Runtime separate(m, {.n_threads = 2, .context = 64});
  const int32_t vocab = static_cast<int32_t>(m.config.vocab_size);
  std::vector<KVCache> bc, sc;
  for (int i = 0; i < K; ++i) {
    bc.push_back(batched.new_cache());
    sc.push_back(separate.new_cache());
  }
  std::vector<int32_t> next(static_cast<size_t>(K));
  for (int i = 0; i < K; ++i) {
    std::vector<int32_t> prompt;
    for (int t = 0; t < 2 + 3 * i; ++t) prompt.push_back((7 * i + 13 * t + 1) % vocab);
    const Tensor a = batched.forward(bc[static_cast<size_t>(i)], prompt, Logits::Last);
    const Tensor b = separate.forward(sc[static_cast<size_t>(i)], prompt, Logits::Last);
    ASSERT_EQ(max_rel_diff(a.data<float>(), b.data<float>(), vocab), 0.0f) << what;
    next[static_cast<size_t>(i)] = (5 * i + 3) % vocab;
  }
  std::vector<KVCache*> ptrs;
  for (KVCache& c : bc) ptrs.push_back(&c);
  for (int step = 0; step < steps; ++step) {
    const Tensor got = batched.forward_batch(next, ptrs);
    ASSERT_EQ(got.dim(0), K);
    for (int i = 0; i < K; ++i) {
      const int32_t tok = next[static_cast<size_t>(i)];
      const Tensor want = separate.forward(sc[static_cast<size_t>(i)], std::span<const int32_t>(&tok, 1), Logits::Last);
      const float* row = got.data<float>() + static_cast<int64_t>(i) * vocab;
      const float d = max_rel_diff(row, want.data<float>(), vocab);
      if (K == 1) {
        EXPECT_EQ(d, 0.0f) << what << ": K = 1 must be the single-sequence path";
      } else {
        EXPECT_LT(d, 1e-5f) << what << " step " << step << " sequence " << i;
      }
      next[static_cast<size_t>(i)] = (tok * 31 + 7 + i) % vocab;
    }
  }
  for (int i = 0; i < K; ++i) {
    EXPECT_EQ(bc[static_cast<size_t>(i)].size(), sc[static_cast<size_t>(i)].size()) << what;
  }
}

TEST(BatchDecode, EqualsSeparateForwardsOnRandomModels) {
  for (int K : {1, 3, 8}) {
    check_batched_equals_separate(model::testing::two_layer_llama_model(11), K, 4, "llama K=" + std::to_string(K));
    check_batched_equals_separate(model::testing::random_gpt2_model({}, 12), K, 4, "gpt2 K=" + std::to_string(K));
  }
}

TEST(BatchDecode, EqualsSeparateForwardsOnPackedInt4) {
  for (const Model& m : {model::testing::two_layer_llama_model(21), model::testing::random_gpt2_model({}, 22)}) {
    const Model packed = model::rtn_packed_model(m, quant::Scheme::parse("int4:g32"), /*head=*/true, 1);
    check_batched_equals_separate(packed, 5, 3, m.config.model_type + " int4:g32");
  }
}

TEST(BatchDecode, EqualsSeparateForwardsOnStories260K) {
  QF_REQUIRE_SHARED_DATA("stories260K/stories260K.bin");
  const Model m = model::load_model(test::shared_data_path("stories260K/stories260K.bin"));
  check_batched_equals_separate(m, 6, 5, "stories260K");
}

TEST(BatchDecode, BadBatchesThrowAndLeaveCachesUnchanged) {
  const Model m = model::testing::two_layer_llama_model(31);
  Runtime rt(m, {.n_threads = 1, .context = 8});
  KVCache a = rt.new_cache(), b = rt.new_cache();
  const std::vector<int32_t> prompt = {1, 2, 3};
  rt.forward(a, prompt);
  std::vector<int32_t> two = {4, 5};
  std::vector<KVCache*> same = {&a, &a};
  EXPECT_THROW(rt.forward_batch(two, same), Error);
  std::vector<KVCache*> one = {&a};
  EXPECT_THROW(rt.forward_batch(two, one), Error);  // lengths differ
  std::vector<int32_t> bad = {4, static_cast<int32_t>(m.config.vocab_size)};
  std::vector<KVCache*> ab = {&a, &b};
  EXPECT_THROW(rt.forward_batch(bad, ab), Error);
  EXPECT_EQ(a.size(), 3);
  EXPECT_EQ(b.size(), 0);
  KVCache foreign(1, 8, m.config.kv_dim());  // wrong layer count
  std::vector<KVCache*> f = {&foreign};
  std::vector<int32_t> onetok = {4};
  EXPECT_THROW(rt.forward_batch(onetok, f), Error);
  // A full cache cannot take another token.
  const std::vector<int32_t> five = {1, 2, 3, 4, 5};
  rt.forward(a, five);
  ASSERT_EQ(a.size(), 8);
  std::vector<KVCache*> full = {&a};
  EXPECT_THROW(rt.forward_batch(onetok, full), Error);
  EXPECT_EQ(a.size(), 8);
}

}  // namespace
}  // namespace qf::runtime
