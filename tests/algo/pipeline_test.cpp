// The calibration pipeline on small random models: the block-at-a-time runner
// agrees with the whole-model forward, folded channel scales leave the float
// model unchanged, and the methods behave as their papers say they should.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/block_runner.h"
#include "algo/channel_scaling.h"
#include "algo/quantize_model.h"
#include "calib/calibration_set.h"
#include "eval/evaluate.h"
#include "model/linear_layers.h"
#include "model/model.h"
#include "quant/quantize.h"
#include "runtime/activation_quant.h"
#include "runtime/runtime.h"
#include "../model/test_models.h"

namespace qf::algo {
namespace {

using model::InputSite;
using namespace model::testing;

model::Model llama(int64_t kv_heads, bool bias = false, uint64_t seed = 3) {
  LlamaDims d;
  d.kv_heads = kv_heads;
  d.bias = bias;
  d.hidden = 72;  // not a multiple of 32: ragged groups
  d.head_dim = 18;
  return model::build_model(model::ModelConfig::from_hf_json(nlohmann::json::parse(llama_config_json(d)), "test"),
                            random_llama_tensors(d, seed), "random llama");
}

model::Model gpt2() {
  Gpt2Dims d;
  return model::build_model(model::ModelConfig::from_hf_json(nlohmann::json::parse(gpt2_config_json(d)), "test"),
                            random_gpt2_tensors(d, 5), "random gpt2");
}

std::vector<calib::TokenSequence> sequences(const model::Model& m, int64_t n, int64_t len, uint64_t seed) {
  const std::vector<int32_t> toks = random_tokens(n * len * 2, static_cast<int32_t>(m.config.vocab_size), seed);
  return calib::sample_sequences(toks, n, len, seed);
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  double worst = 0.0, scale = 1e-6;
  for (int64_t i = 0; i < a.numel(); ++i) scale = std::max(scale, static_cast<double>(std::fabs(a.data<float>()[i])));
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  return worst / scale;
}

// Mean KL of `q` against `m` on `seqs`.
double kld(const model::Model& m, const model::Model& q, const std::vector<calib::TokenSequence>& seqs) {
  runtime::RuntimeOptions ro;
  ro.n_threads = 1;
  runtime::Runtime a(m, ro), b(q, ro);
  std::vector<eval::Window> w;
  for (const auto& s : seqs) w.push_back({s, 1});
  return eval::evaluate(b, &a, w).kl_mean();
}

TEST(BlockRunner, BlockByBlockEqualsTheWholeForward) {
  for (const model::Model& m : {llama(2, true), gpt2()}) {
    const auto seqs = sequences(m, 2, 24, 11);
    BlockRunner runner(m, seqs, 1);
    for (const auto& layer : m.layers) runner.advance(layer);
    const std::vector<Tensor> logits = runner.logits();
    runtime::RuntimeOptions ro;
    ro.n_threads = 1;
    runtime::Runtime rt(m, ro);
    for (size_t i = 0; i < seqs.size(); ++i) {
      rt.reset();
      const Tensor ref = rt.forward(seqs[i]);
      EXPECT_LT(max_rel_diff(ref, logits[i]), 1e-6) << m.source;
    }
  }
}

TEST(BlockRunner, StopAfterASiteSeesOnlyTheSitesBeforeIt) {
  const model::Model m = llama(2);
  BlockRunner runner(m, sequences(m, 1, 8, 1), 1);
  std::vector<InputSite> seen;
  runner.run(m.layers[0], [&](InputSite s, const float*, int64_t rows, int64_t) {
    seen.push_back(s);
    EXPECT_EQ(rows, 8);
  }, InputSite::FfnIn);
  EXPECT_EQ(seen, (std::vector<InputSite>{InputSite::AttnIn, InputSite::AttnOut, InputSite::FfnIn}));
}

TEST(HessianAccumulator, EqualsXTransposeX) {
  std::vector<float> x = {1, 2, 3, -1, 0, 2};  // [2, 3]
  HessianAccumulator h(3);
  h.add(x.data(), 2);
  h.add(x.data(), 1);
  const std::vector<double>& m = h.matrix();
  // rows (1,2,3), (-1,0,2), (1,2,3)
  EXPECT_DOUBLE_EQ(m[0], 3.0);
  EXPECT_DOUBLE_EQ(m[1], 4.0);
  EXPECT_DOUBLE_EQ(m[3], 4.0);
  EXPECT_DOUBLE_EQ(m[8], 22.0);
  EXPECT_EQ(h.tokens(), 3);
}

TEST(ChannelScaling, FoldedScalesLeaveTheFloatBlockUnchanged) {
  struct Case {
    model::Model m;
    std::vector<InputSite> sites;
  };
  std::vector<Case> cases;
  cases.push_back({llama(4, true), {InputSite::AttnIn, InputSite::AttnOut, InputSite::FfnIn, InputSite::FfnHidden}});
  cases.push_back({gpt2(), {InputSite::AttnIn, InputSite::AttnOut, InputSite::FfnIn}});
  for (auto& c : cases) {
    const auto seqs = sequences(c.m, 1, 16, 2);
    BlockRunner runner(c.m, seqs, 1);
    std::vector<Tensor> ref, got;
    runner.run(c.m.layers[0], nullptr, std::nullopt, &ref);
    model::LayerWeights w = c.m.layers[0];
    const std::vector<float> norm_before = c.m.layers[0].attn_norm.to_f32_vector();
    Rng rng(9);
    for (InputSite site : c.sites) {
      ASSERT_TRUE(can_scale_site(c.m.config, site));
      int64_t in = 0;
      for (const auto& l : model::block_linears(c.m.config, 0))
        if (l.site == site) in = l.in_features;
      std::vector<double> s(static_cast<size_t>(in));
      for (auto& v : s) v = std::exp(rng.normal(1.0f));
      apply_channel_scales(c.m.config, w, site, s);
    }
    runner.run(w, nullptr, std::nullopt, &got);
    EXPECT_LT(max_rel_diff(ref[0], got[0]), 2e-5) << c.m.source;
    // The model's own tensors are untouched (the fold made copies).
    EXPECT_EQ(c.m.layers[0].attn_norm.to_f32_vector(), norm_before) << c.m.source;
  }
  EXPECT_FALSE(can_scale_site(llama(2).config, InputSite::AttnOut));  // GQA: o's inputs repeat v's heads
  EXPECT_FALSE(can_scale_site(gpt2().config, InputSite::FfnHidden));  // GELU is not linear
}

TEST(ActivationQuant, DynamicPerTokenErrorIsHalfAStep) {
  std::vector<float> x = {0.1f, -2.0f, 0.5f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 3.0f, 1.5f, -0.7f, 0.2f};
  std::vector<float> y(x.size());
  model::ActivationQuant aq;
  aq.mode = model::ActQuantMode::DynamicToken;
  runtime::fake_quantize_activations(x.data(), 3, 4, aq, y.data());
  for (int r = 0; r < 3; ++r) {
    float amax = 0;
    for (int i = 0; i < 4; ++i) amax = std::max(amax, std::fabs(x[static_cast<size_t>(r * 4 + i)]));
    for (int i = 0; i < 4; ++i) {
      const size_t k = static_cast<size_t>(r * 4 + i);
      EXPECT_LE(std::fabs(x[k] - y[k]), amax / 127.0f / 2.0f + 1e-7f);
    }
  }
  EXPECT_EQ(y[4], 0.0f);  // an all-zero token stays zero
  aq.mode = model::ActQuantMode::StaticTensor;
  aq.scale = 0.01f;
  runtime::fake_quantize_activations(x.data(), 3, 4, aq, y.data());
  EXPECT_FLOAT_EQ(y[1], -1.27f);  // clamped at -127 steps
  EXPECT_FLOAT_EQ(y[0], 0.1f);
}

QuantizeOptions options(Method method, const char* scheme) {
  QuantizeOptions o;
  o.method = method;
  o.weights = quant::Scheme::parse(scheme);
  o.n_threads = 1;
  return o;
}

TEST(QuantizeModel, GptqAndAwqBeatRoundToNearest) {
  const model::Model m = llama(2);
  const auto calib = sequences(m, 8, 32, 4);
  const auto held_out = sequences(m, 4, 32, 99);
  auto quality = [&](const QuantizeOptions& o) {
    return kld(m, model::dequantized_model(quantize_model(m, calib, o)), held_out);
  };
  const double rtn = quality(options(Method::Rtn, "int3:g32"));
  const double gptq = quality(options(Method::Gptq, "int3:g32"));
  const double awq = quality(options(Method::Awq, "int3:g32"));
  EXPECT_GT(rtn, 0.0);
  EXPECT_LT(gptq, rtn);
  EXPECT_LT(awq, rtn);
}

TEST(QuantizeModel, SameInputsGiveIdenticalCodes) {
  const model::Model m = gpt2();
  const auto calib = sequences(m, 4, 16, 4);
  QuantizeOptions o = options(Method::Gptq, "int4:g16:asym");
  o.bias_correction = true;
  const auto a = quantize_model(m, calib, o), b = quantize_model(m, calib, o);
  ASSERT_EQ(a.linears.size(), b.linears.size());
  for (size_t i = 0; i < a.linears.size(); ++i) {
    const auto& x = a.linears[i].weight;
    const auto& y = b.linears[i].weight;
    ASSERT_EQ(x.codes.nbytes(), y.codes.nbytes());
    EXPECT_EQ(std::memcmp(x.codes.bytes(), y.codes.bytes(), x.codes.nbytes()), 0);
    EXPECT_EQ(std::memcmp(x.scales.bytes(), y.scales.bytes(), x.scales.nbytes()), 0);
  }
}

TEST(QuantizeModel, BiasCorrectionRemovesTheMeanOutputShift) {
  const model::Model m = llama(2);
  const auto calib = sequences(m, 8, 32, 4);
  QuantizeOptions o = options(Method::Rtn, "int2:g32");
  // Only block 0's down_proj: the block output then shifts by exactly
  // (W - Wq) E[x] on the calibration tokens, which the correction cancels.
  o.skip = "layers\\.[12]\\.|self_attn|gate_proj|up_proj";
  const model::Model plain = model::dequantized_model(quantize_model(m, calib, o));
  o.bias_correction = true;
  const model::QuantizedModel qm = quantize_model(m, calib, o);
  ASSERT_FALSE(qm.model.layers[0].b_down.empty());
  const model::Model corrected = model::dequantized_model(qm);
  // Mean block-0 output over the calibration tokens, against the float block.
  auto mean_shift = [&](const model::Model& q) {
    BlockRunner a(m, calib, 1), b(q, calib, 1);
    a.advance(m.layers[0]);
    b.advance(q.layers[0]);
    const int64_t H = m.config.hidden_size;
    std::vector<double> d(static_cast<size_t>(H), 0.0);
    int64_t n = 0;
    for (size_t s = 0; s < calib.size(); ++s) {
      const Tensor& x = a.hidden()[s];
      const Tensor& y = b.hidden()[s];
      for (int64_t t = 0; t < x.dim(0); ++t, ++n)
        for (int64_t j = 0; j < H; ++j) d[static_cast<size_t>(j)] += y.data<float>()[t * H + j] - x.data<float>()[t * H + j];
    }
    double norm = 0.0;
    for (double v : d) norm += (v / static_cast<double>(n)) * (v / static_cast<double>(n));
    return std::sqrt(norm);
  };
  EXPECT_LT(mean_shift(corrected), 0.01 * mean_shift(plain));
}

TEST(QuantizeModel, SmoothQuantBeatsNaiveW8A8WithOutlierChannels) {
  model::Model m = llama(2);
  // Outlier activation channels, as real LLMs have: a few norm weights x30.
  for (auto& L : m.layers) {
    L.attn_norm = L.attn_norm.clone();
    L.ffn_norm = L.ffn_norm.clone();
    for (int j : {3, 40}) {
      L.attn_norm.mutable_data<float>()[j] *= 30.0f;
      L.ffn_norm.mutable_data<float>()[j] *= 30.0f;
    }
  }
  const auto calib = sequences(m, 8, 32, 4);
  QuantizeOptions naive = options(Method::Rtn, "int8:channel");
  naive.acts.enabled = true;
  naive.acts.mode = model::ActQuantMode::StaticTensor;
  QuantizeOptions smooth = naive;
  smooth.method = Method::SmoothQuant;
  const double a = kld(m, model::dequantized_model(quantize_model(m, calib, naive)), calib);
  const double b = kld(m, model::dequantized_model(quantize_model(m, calib, smooth)), calib);
  EXPECT_LT(b, a);
}

TEST(QuantizeModel, MixedPrecisionStaysWithinBudget) {
  const model::Model m = llama(2);
  const auto calib = sequences(m, 4, 16, 4);
  QuantizeOptions o = options(Method::Rtn, "int4:g32");
  o.budget_bpw = 3.6;
  QuantizeReport report;
  quantize_model(m, calib, o, &report);
  EXPECT_LE(report.bits_per_weight(), 3.6);
  EXPECT_GT(report.bits_per_weight(), 3.0);
  for (const auto& l : report.layers) EXPECT_GE(l.sensitivity, 0.0);
}

TEST(QuantizeModel, OptionsTheMethodCannotDoAreErrors) {
  const model::Model m = llama(2);
  const auto calib = sequences(m, 2, 16, 4);
  expect_error([&] { quantize_model(m, calib, options(Method::Awq, "int4:tensor")); }, {"AWQ", "per-tensor"});
  expect_error([&] { quantize_model(m, calib, options(Method::SmoothQuant, "int8:channel")); }, {"W8A8", "--acts"});
  expect_error([&] { quantize_model(m, {}, options(Method::Gptq, "int4:g32")); }, {"gptq", "calibration"});
  QuantizeOptions bad_skip = options(Method::Rtn, "int4:g32");
  bad_skip.skip = "([";
  expect_error([&] { quantize_model(m, calib, bad_skip); }, {"--skip", "(["});
  QuantizeOptions tiny = options(Method::Rtn, "int4:g32");
  tiny.budget_bpw = 1.0;
  expect_error([&] { quantize_model(m, calib, tiny); }, {"budget"});
  // RTN weight-only needs no calibration at all.
  EXPECT_NO_THROW(quantize_model(m, {}, options(Method::Rtn, "int4:g32")));
}

}  // namespace
}  // namespace qf::algo
