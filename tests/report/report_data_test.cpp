// The data `qforge report` collects, checked against independent arithmetic:
// histograms against direct binning, quantization grids against the scheme's
// definition, SQNR/MSE against the plain formulas on the dequantized weight,
// per-token KLD and top-k against hand-computed softmaxes and against
// eval::evaluate (what `qforge eval --baseline` reports), and the per-layer
// KLD contribution against its defining property (an unchanged layer adds 0).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "eval/evaluate.h"
#include "model/linear_layers.h"
#include "model/model.h"
#include "quant/codebook.h"
#include "quant/quantize.h"
#include "report/histograms.h"
#include "report/html.h"
#include "report/layer_errors.h"
#include "report/token_kld.h"
#include "shared_data.h"
#include "tokenizer/tokenizer.h"

namespace qf::report {
namespace {

const std::string kStories = "stories260K/stories260K.bin";

Tensor matrix(std::vector<float> v, int64_t rows, int64_t cols) { return Tensor::from_f32(v, {rows, cols}); }

TEST(ReportHistogram, CountsEveryFiniteValueInItsBin) {
  std::vector<float> v;
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.5f, 2.0f);
  for (int i = 0; i < 5000; ++i) v.push_back(d(rng));
  v.push_back(NAN);
  v.push_back(INFINITY);
  const HistogramData h = histogram_of(v, 32);
  ASSERT_EQ(h.counts.size(), 32u);
  EXPECT_EQ(h.total, 5000u);
  EXPECT_EQ(std::accumulate(h.counts.begin(), h.counts.end(), uint64_t{0}), 5000u);
  ASSERT_GT(h.width, 0);
  // Every value lies in the bin its edges say.
  std::vector<uint64_t> direct(32, 0);
  for (int i = 0; i < 5000; ++i) {
    const auto b = static_cast<int64_t>(std::floor((v[static_cast<size_t>(i)] - h.lo) / h.width));
    ASSERT_GE(b, 0);
    ASSERT_LT(b, 32);
    ++direct[static_cast<size_t>(b)];
  }
  EXPECT_EQ(direct, h.counts);
  EXPECT_FLOAT_EQ(static_cast<float>(h.min), *std::min_element(v.begin(), v.begin() + 5000));
  EXPECT_FLOAT_EQ(static_cast<float>(h.max), *std::max_element(v.begin(), v.begin() + 5000));
  EXPECT_THROW(histogram_of(v, 1), Error);
}

TEST(ReportGrid, SymmetricInt4IsScaleTimesMinus7To7) {
  // Row 0's first group has absmax 3.5: scale 0.5, levels -3.5 .. 3.5.
  std::vector<float> v(2 * 64, 0.25f);
  v[5] = -3.5f;
  v[64 + 3] = 10.0f;  // another row, another scale: not the first group's grid
  const auto q = quant::quantize(matrix(v, 2, 64), quant::Scheme::parse("int4:g32"));
  const std::vector<float> levels = first_group_levels(q);
  ASSERT_EQ(levels.size(), 15u);
  for (int i = 0; i < 15; ++i) EXPECT_FLOAT_EQ(levels[static_cast<size_t>(i)], 0.5f * static_cast<float>(i - 7));
}

TEST(ReportGrid, AsymmetricAndCodebookGrids) {
  std::vector<float> v(32);
  for (int i = 0; i < 32; ++i) v[static_cast<size_t>(i)] = -1.0f + 4.0f * static_cast<float>(i) / 31.0f;
  const auto asym = quant::quantize(matrix(v, 1, 32), quant::Scheme::parse("int4:g32:asym"));
  const std::vector<float> a = first_group_levels(asym);
  ASSERT_EQ(a.size(), 16u);
  // 16 evenly spaced levels covering [-1, 3] (the zero point puts 0 on the grid).
  const float step = a[1] - a[0];
  for (size_t i = 1; i < a.size(); ++i) EXPECT_NEAR(a[i] - a[i - 1], step, 1e-5f);
  EXPECT_LE(a.front(), -1.0f + step / 2);
  EXPECT_GE(a.back(), 3.0f - step / 2);

  const auto nf4 = quant::quantize(matrix(v, 1, 32), quant::Scheme::parse("nf4:g32"));
  const std::vector<float> n = first_group_levels(nf4);
  ASSERT_EQ(n.size(), 16u);
  const float scale = quant::stored_params(nf4).params[0].scale;
  for (size_t i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(n[i], scale * quant::kNF4Values[i]);
}

TEST(ReportGrid, StaticActivationQuantizerLevels) {
  model::ActivationQuant a;
  a.mode = model::ActQuantMode::StaticTensor;
  a.bits = 8;
  a.symmetric = true;
  a.scale = 0.5f;
  const auto levels = activation_levels(a);
  ASSERT_EQ(levels.size(), 255u);  // restricted symmetric range -127..127
  EXPECT_FLOAT_EQ(levels.front(), -63.5f);
  EXPECT_FLOAT_EQ(levels.back(), 63.5f);
  a.mode = model::ActQuantMode::DynamicToken;
  EXPECT_TRUE(activation_levels(a).empty());  // its scale changes per token: no fixed grid
}

TEST(ReportTokens, TopKAndKldMatchHandComputedSoftmax) {
  const Tensor p = matrix({1.0f, 3.0f, 2.0f, 0.0f, 0.0f, 0.0f, 0.0f, 5.0f}, 2, 4);
  const Tensor q = matrix({2.0f, 2.0f, 2.0f, 0.0f, 0.0f, 0.0f, 0.0f, 5.0f}, 2, 4);
  const auto top = top_k(p, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].ids, (std::vector<int32_t>{1, 2}));
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + 1.0;
  EXPECT_NEAR(top[0].probs[0], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(top[0].probs[1], std::exp(2.0) / z, 1e-6);
  EXPECT_EQ(top[1].ids, (std::vector<int32_t>{3, 0}));  // ties broken by the lower id

  const auto kld = kld_per_row(p, q);
  ASSERT_EQ(kld.size(), 2u);
  const double zq = 3 * std::exp(2.0) + 1.0;
  double want = 0;
  const double lp[4] = {1, 3, 2, 0}, lq[4] = {2, 2, 2, 0};
  for (int i = 0; i < 4; ++i) {
    const double pi = std::exp(lp[i]) / z, qi = std::exp(lq[i]) / zq;
    want += pi * std::log(pi / qi);
  }
  EXPECT_NEAR(kld[0], want, 1e-6);
  EXPECT_NEAR(kld[1], 0.0, 1e-7);  // identical rows

  const std::vector<int32_t> toks = {0, 1};
  const auto nll = nll_per_row(p, toks);
  ASSERT_EQ(nll.size(), 1u);
  EXPECT_NEAR(nll[0], std::log(z) - 3.0, 1e-5);
  EXPECT_THROW(kld_per_row(p, matrix({1, 2, 3}, 1, 3)), Error);
}

TEST(ReportHtml, EmbeddedJsonCannotCloseItsScriptAndReadsBack) {
  nlohmann::ordered_json j = {{"format", "qforge-report"},
                              {"evil", "</script><script>alert(1)</script> <!-- /*@REPORT_JS@*/ @REPORT_JSON@"}};
  const std::string page = render_html(j);
  const std::string open = "<script id=\"qf-data\" type=\"application/json\">";
  const size_t a = page.find(open);
  ASSERT_NE(a, std::string::npos);
  const size_t b = page.find("</script>", a);
  const std::string embedded = page.substr(a + open.size(), b - a - open.size());
  EXPECT_EQ(embedded.find('<'), std::string::npos);
  EXPECT_EQ(nlohmann::ordered_json::parse(embedded), j);
  // The page's own scripts follow the data, each once: uPlot and the report script.
  EXPECT_NE(page.find("var uPlot=", b), std::string::npos);
  EXPECT_NE(page.find("window.qfReport = registry", b), std::string::npos);
  // Every template marker was filled; the ones in the data stay data.
  const std::string outside = page.substr(0, a) + page.substr(b);
  EXPECT_EQ(outside.find("/*@"), std::string::npos);
  EXPECT_EQ(outside.find("@REPORT_JSON@"), std::string::npos);
  EXPECT_NE(embedded.find("/*@REPORT_JS@*/ @REPORT_JSON@"), std::string::npos);
}

class ReportStories : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::shared_data_exists(kStories)) GTEST_SKIP() << kStories << " not present";
    ASSERT_TRUE(test::shared_data_checksum_problem(kStories).empty());
    fp32_ = model::load_model(test::shared_data_path(kStories));
    const auto tok = tokenizer::make_tokenizer(model::load_vocab(test::shared_data_path(kStories)));
    tokens_ = tok->encode("Once upon a time, there was a little girl named Lily. She loved to play outside.", true);
  }
  // Every linear layer RTN-quantized with `scheme`, as qforge quantize --method rtn does.
  model::QuantizedModel rtn(const std::string& scheme) const {
    model::QuantizedModel qm;
    qm.model = fp32_;
    for (const auto& l : model::all_linears(fp32_.config)) {
      const Tensor w = model::weight_out_in(l, model::linear_weight(fp32_.layers[static_cast<size_t>(l.layer)], l.kind));
      qm.linears.push_back({l.name, quant::quantize(w, quant::Scheme::parse(scheme))});
    }
    return qm;
  }
  model::Model fp32_;
  std::vector<int32_t> tokens_;
};

TEST_F(ReportStories, LayerSqnrAndMseAreThoseOfTheDequantizedWeight) {
  const model::QuantizedModel qm = rtn("int4:g32");
  const auto errors = layer_errors(fp32_, qm);
  ASSERT_EQ(errors.size(), qm.linears.size());
  for (size_t i = 0; i < errors.size(); ++i) {
    const LayerError& e = errors[i];
    ASSERT_EQ(e.layer.name, qm.linears[i].name);
    ASSERT_TRUE(e.scheme.has_value());
    EXPECT_EQ(e.scheme->to_string(), "int4:g32");
    const Tensor ref = model::weight_out_in(e.layer, model::linear_weight(fp32_.layers[static_cast<size_t>(e.layer.layer)], e.layer.kind));
    const Tensor deq = quant::dequantize(qm.linears[i].weight);
    double s = 0, n = 0;
    for (int64_t k = 0; k < ref.numel(); ++k) {
      const double x = ref.data<float>()[k], d = x - deq.data<float>()[k];
      s += x * x;
      n += d * d;
    }
    EXPECT_NEAR(e.metrics.sqnr_db, 10 * std::log10(s / n), 1e-6) << e.layer.name;
    EXPECT_NEAR(e.metrics.mse, n / static_cast<double>(ref.numel()), 1e-12) << e.layer.name;
    // int4 g32 with an f32 scale per 32 weights: 4 + 32/32 bits.
    EXPECT_NEAR(e.bits_per_weight, 5.0, 0.2) << e.layer.name;
    EXPECT_EQ(e.grid.size(), 15u);
  }
  // Wrong architecture: a model with a layer fewer is not a quantized version of it.
  model::QuantizedModel other = qm;
  other.model.config.n_layers -= 1;
  EXPECT_THROW(layer_errors(fp32_, other), Error);
}

TEST_F(ReportStories, KldContributionIsZeroForAnUnchangedLayerAndGrowsWithFewerBits) {
  const Tensor base = forward_logits(fp32_, tokens_, 1);
  model::QuantizedModel q4 = rtn("int4:g32"), q2 = rtn("int2:g16:asym");
  auto e4 = layer_errors(fp32_, q4), e2 = layer_errors(fp32_, q2);
  // Swapping each layer for the fp32 one itself changes nothing: exactly 0.
  auto same = e4;
  add_kld_contributions(fp32_, fp32_, tokens_, base, same, 1);
  for (const auto& e : same) EXPECT_EQ(e.kld.value_or(-1), 0.0) << e.layer.name;
  add_kld_contributions(fp32_, model::dequantized_model(q4), tokens_, base, e4, 1);
  add_kld_contributions(fp32_, model::dequantized_model(q2), tokens_, base, e2, 1);
  double s4 = 0, s2 = 0;
  for (size_t i = 0; i < e4.size(); ++i) {
    ASSERT_TRUE(e4[i].kld && e2[i].kld);
    EXPECT_GT(*e4[i].kld, 0.0) << e4[i].layer.name;
    s4 += *e4[i].kld;
    s2 += *e2[i].kld;
  }
  EXPECT_GT(s2, 4 * s4);  // 2-bit layers cost far more than 4-bit ones
}

TEST_F(ReportStories, NormsMatchDetectsFoldedChannelScales) {
  EXPECT_TRUE(norms_match(fp32_, fp32_));
  EXPECT_TRUE(norms_match(fp32_, model::dequantized_model(rtn("int4:g32"))));
  model::Model scaled = fp32_;
  Tensor norm = scaled.layers[1].ffn_norm.clone();
  norm.mutable_data<float>()[7] *= 2.0f;  // what folding a channel scale does
  scaled.layers[1].ffn_norm = norm;
  EXPECT_FALSE(norms_match(fp32_, scaled));
}

TEST_F(ReportStories, PerTokenKldIsWhatEvalReports) {
  const model::QuantizedModel qm = rtn("int4:g32");
  const model::Model deq = model::dequantized_model(qm);
  const Tensor base = forward_logits(fp32_, tokens_, 1);
  const Tensor logits = forward_logits(deq, tokens_, 1);
  const auto kld = kld_per_row(base, logits);

  runtime::RuntimeOptions opt;
  opt.n_threads = 1;
  opt.context = static_cast<int64_t>(tokens_.size());
  runtime::Runtime rt(deq, opt), brt(fp32_, opt);
  const std::vector<eval::Window> windows = {{tokens_, 0}};
  const eval::EvalResult r = eval::evaluate(rt, &brt, windows);
  ASSERT_EQ(r.kl.size() + 1, kld.size());  // eval scores rows 0..T-2; the last row predicts past the text
  for (size_t t = 0; t < r.kl.size(); ++t) EXPECT_NEAR(kld[t], r.kl[t], 1e-6 + 1e-5 * r.kl[t]) << "token " << t;
  const auto nll = nll_per_row(logits, tokens_);
  double s = 0;
  for (float x : nll) s += x;
  EXPECT_NEAR(s, r.nll_sum, 1e-4 * r.nll_sum);
}

TEST_F(ReportStories, SiteActivationsCoverEveryBlockAndSite) {
  const auto sites = site_activations(fp32_, tokens_, 48, 1);
  ASSERT_EQ(sites.size(), static_cast<size_t>(fp32_.config.n_layers * model::kInputSites));
  for (const auto& s : sites) {
    EXPECT_EQ(s.hist.counts.size(), 48u);
    const int64_t cols = s.site == model::InputSite::FfnHidden ? fp32_.config.intermediate_size : fp32_.config.hidden_size;
    EXPECT_EQ(s.stats.channels, cols);
    EXPECT_EQ(s.hist.total, static_cast<uint64_t>(cols) * tokens_.size());
    EXPECT_EQ(static_cast<int64_t>(s.stats.channel_absmax.size()), cols);
    EXPECT_NEAR(s.stats.absmax, std::max(-s.hist.min, s.hist.max), 1e-6);
  }
}

}  // namespace
}  // namespace qf::report
