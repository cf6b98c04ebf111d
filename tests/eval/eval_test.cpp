#include "eval/evaluate.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "eval/protocol.h"
#include "model/model.h"
#include "runtime/runtime.h"
#include "shared_data.h"
#include "tokenizer/load.h"

namespace qf::eval {
namespace {

const std::string kModel = "stories260K/stories260K.bin";
const std::string kText = "stories260K/tinystories_valid_sample_30KB.txt";

std::string read(const std::string& relative) {
  std::ifstream in(test::shared_data_path(relative), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The same model with one weight matrix scaled by (1 + eps).
model::Model perturbed(const model::Model& m, const std::string& name, float eps) {
  auto tensors = m.named_tensors();
  for (auto& t : tensors) {
    if (t.name != name) continue;
    auto v = t.tensor.to_f32_vector();
    for (auto& x : v) x *= 1.0f + eps;
    t.tensor = Tensor::from_f32(v, t.tensor.shape());
  }
  return model::build_model(m.config, tensors, "perturbed");
}

class Stories260KEval : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_SHARED_DATA(kModel);
    QF_REQUIRE_SHARED_DATA(kText);
    QF_REQUIRE_SHARED_DATA("stories260K/tok512.model");
    model_ = std::make_unique<model::Model>(model::load_model(test::shared_data_path(kModel)));
    tok_ = tokenizer::make_tokenizer(tokenizer::find_tokenizer(test::shared_data_path(kModel)));
  }
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<tokenizer::Tokenizer> tok_;
};

// The documented reference: about 5.25 over about 9,100 tokens, lines cut to
// the model's 512 positions.
TEST_F(Stories260KEval, LinesPerplexityMatchesTheReference) {
  const auto windows = make_windows(*tok_, read(kText), {.protocol = Protocol::Lines, .n_ctx = 512});
  runtime::Runtime rt(*model_, {.n_threads = 2, .context = 512});
  const EvalResult r = evaluate(rt, nullptr, windows);
  EXPECT_EQ(r.windows, 19);
  EXPECT_NEAR(static_cast<double>(r.tokens), 9100, 100);
  EXPECT_NEAR(r.perplexity(), 5.25, 5.25 * 0.005);
  EXPECT_FALSE(r.has_baseline);
}

TEST_F(Stories260KEval, AModelAgainstItselfHasNoDivergence) {
  const auto windows = make_windows(*tok_, read(kText), {.protocol = Protocol::Chunks, .n_ctx = 128, .max_windows = 6});
  runtime::Runtime a(*model_, {.n_threads = 2, .context = 128});
  runtime::Runtime b(*model_, {.n_threads = 2, .context = 128});
  const EvalResult r = evaluate(a, &b, windows, {.batch = 50});
  ASSERT_EQ(r.tokens, 6 * 63);
  EXPECT_EQ(r.kl.size(), static_cast<size_t>(r.tokens));
  EXPECT_EQ(r.kl_mean(), 0.0);
  EXPECT_EQ(r.kl_max(), 0.0);
  EXPECT_EQ(r.top1_agree, r.tokens);
  EXPECT_EQ(r.ppl_ratio(), 1.0);
  EXPECT_EQ(r.rms_dp(), 0.0);
  // Another thread count sums in another order: the same model within rounding.
  runtime::Runtime c(*model_, {.n_threads = 1, .context = 128});
  const EvalResult rc = evaluate(c, &b, windows, {.batch = 7});
  EXPECT_LT(rc.kl_max(), 1e-9);
  EXPECT_EQ(rc.top1_agree, rc.tokens);
  EXPECT_NEAR(rc.ppl_ratio(), 1.0, 1e-6);
}

TEST_F(Stories260KEval, APerturbedTensorShowsUpInEveryMeasure) {
  const model::Model worse = perturbed(*model_, "model.layers.2.mlp.down_proj.weight", 0.3f);
  const auto windows = make_windows(*tok_, read(kText), {.protocol = Protocol::Chunks, .n_ctx = 128, .max_windows = 6});
  runtime::Runtime base(*model_, {.n_threads = 2, .context = 128});
  runtime::Runtime test(worse, {.n_threads = 2, .context = 128});
  const EvalResult r = evaluate(test, &base, windows);
  EXPECT_GT(r.kl_mean(), 1e-4);
  EXPECT_GE(r.kl_quantile(0.99), r.kl_mean());
  EXPECT_GE(r.kl_max(), r.kl_quantile(0.99));
  EXPECT_LT(r.top1_agreement(), 1.0);
  EXPECT_GT(r.rms_dp(), 0.0);
  EXPECT_NE(r.ppl_ratio(), 1.0);
  // Swapping the roles gives a different but also positive divergence (KL is not symmetric).
  const EvalResult swapped = evaluate(base, &test, windows);
  EXPECT_GT(swapped.kl_mean(), 1e-4);
  EXPECT_NEAR(swapped.perplexity(), r.baseline_perplexity(), 1e-9 * r.baseline_perplexity());
}

TEST(EvalResult, KlQuantileUsesNearestRank) {
  EvalResult r;
  r.kl = {0.5f, 0.1f, 0.4f, 0.2f, 0.3f};
  r.tokens = 5;
  EXPECT_FLOAT_EQ(static_cast<float>(r.kl_quantile(0.99)), 0.5f);
  EXPECT_FLOAT_EQ(static_cast<float>(r.kl_quantile(0.5)), 0.3f);
  EXPECT_FLOAT_EQ(static_cast<float>(r.kl_quantile(0.0)), 0.1f);
  EXPECT_NEAR(r.kl_mean(), 0.3, 1e-7);
}

}  // namespace
}  // namespace qf::eval
