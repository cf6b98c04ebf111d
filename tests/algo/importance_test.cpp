// Importance weights: per input column E[x^2] of every linear layer, checked
// against a hand computation for the first block (RMSNorm of the embeddings).
#include <gtest/gtest.h>

#include <cmath>

#include "algo/importance.h"
#include "calib/calibration_set.h"
#include "model/linear_layers.h"
#include "model/model.h"
#include "../model/test_models.h"

namespace qf::algo {
namespace {

using namespace model::testing;

TEST(Importance, FirstBlockInputsMatchAHandComputedRmsNorm) {
  LlamaDims d;
  d.hidden = 48;
  d.head_dim = 12;
  const model::Model m = model::build_model(
      model::ModelConfig::from_hf_json(nlohmann::json::parse(llama_config_json(d)), "test"), random_llama_tensors(d, 4),
      "random llama");
  const auto toks = random_tokens(200, static_cast<int32_t>(m.config.vocab_size), 8);
  const auto seqs = calib::sample_sequences(toks, 3, 16, 1);
  const auto imp = input_mean_squares(m, seqs, 1);
  EXPECT_EQ(imp.size(), model::all_linears(m.config).size());
  for (const auto& l : model::all_linears(m.config)) {
    const auto& v = imp.at(l.name + ".weight");
    ASSERT_EQ(static_cast<int64_t>(v.size()), l.in_features) << l.name;
    for (const float x : v) EXPECT_TRUE(std::isfinite(x) && x >= 0.0f) << l.name;
  }
  // q, k and v read the same input.
  EXPECT_EQ(imp.at("model.layers.0.self_attn.q_proj.weight"), imp.at("model.layers.0.self_attn.v_proj.weight"));
  EXPECT_EQ(imp.at("model.layers.1.mlp.gate_proj.weight"), imp.at("model.layers.1.mlp.up_proj.weight"));

  const int64_t h = m.config.hidden_size;
  std::vector<double> expected(static_cast<size_t>(h), 0.0);
  int64_t n = 0;
  const float* embed = m.embed.data<float>();
  const float* norm = m.layers[0].attn_norm.data<float>();
  for (const auto& s : seqs)
    for (const int32_t t : s) {
      double ms = 0.0;
      for (int64_t j = 0; j < h; ++j) ms += static_cast<double>(embed[t * h + j]) * embed[t * h + j];
      const double inv = 1.0 / std::sqrt(ms / static_cast<double>(h) + m.config.norm_eps);
      for (int64_t j = 0; j < h; ++j) {
        const double y = embed[t * h + j] * inv * norm[j];
        expected[static_cast<size_t>(j)] += y * y;
      }
      ++n;
    }
  const auto& got = imp.at("model.layers.0.self_attn.k_proj.weight");
  for (int64_t j = 0; j < h; ++j)
    EXPECT_NEAR(got[static_cast<size_t>(j)], expected[static_cast<size_t>(j)] / static_cast<double>(n),
                1e-4 * expected[static_cast<size_t>(j)] / static_cast<double>(n) + 1e-9)
        << j;
}

}  // namespace
}  // namespace qf::algo
