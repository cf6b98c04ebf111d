// Rotations (algo/rotation.h): the rotated float model computes the same
// logits, its activations lose their outliers (kurtosis), and on stories260K
// rotation + GPTQ beats GPTQ alone by the factors docs/results.md reports.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>

#include "algo/activation_outliers.h"
#include "algo/calibration.h"
#include "algo/quantize_model.h"
#include "algo/rotation.h"
#include "algo/rotation_learning.h"
#include "calib/calibration_set.h"
#include "eval/evaluate.h"
#include "eval/protocol.h"
#include "model/model.h"
#include "model/quantized_checkpoint.h"
#include "model/quantized_formats.h"
#include "quant/hadamard.h"
#include "runtime/runtime.h"
#include "shared_data.h"
#include "tokenizer/tokenizer.h"
#include "../model/test_models.h"

namespace qf::algo {
namespace {

using model::InputSite;
using namespace model::testing;

const std::string kStories = "stories260K/stories260K.bin";

model::Model llama(int64_t hidden, int64_t inter, int64_t head_dim, bool tied, bool bias = true) {
  LlamaDims d;
  d.hidden = hidden;
  d.inter = inter;
  d.head_dim = head_dim;
  d.tied = tied;
  d.bias = bias;
  return random_llama_model(d, 9, "random llama");
}

Tensor logits_of(const model::Model& m, const std::vector<int32_t>& tokens) {
  runtime::RuntimeOptions ro;
  ro.n_threads = 1;
  runtime::Runtime rt(m, ro);
  return rt.forward(tokens, runtime::Logits::All);
}

// max |a - b| over max |a|: the logits' relative difference.
double rel_diff(const Tensor& a, const Tensor& b) {
  double worst = 0.0, scale = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(a.data<float>()[i])));
    worst = std::max(worst, static_cast<double>(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  }
  return worst / std::max(scale, 1e-30);
}

void expect_invariant(const model::Model& m, const RotationOptions& o, const std::vector<int32_t>& tokens) {
  model::Model r = m;
  rotate_model(r, o);
  const Tensor a = logits_of(m, tokens), b = logits_of(r, tokens);
  EXPECT_LT(rel_diff(a, b), 1e-5) << m.source;
  // and it did change the weights
  EXPECT_NE(r.layers[0].wq.data<float>()[0], m.layers[0].wq.data<float>()[0]);
}

TEST(Rotation, SyntheticLlamaLogitsUnchanged) {
  const std::vector<int32_t> tokens = random_tokens(40, 101, 4);
  // powers of two; 72 = 9 * 8, 96 = 3 * 32 and head_dim 12 = 3 * 4 (Kronecker
  // with a random orthogonal factor); tied and untied heads; biases.
  for (const auto& m : {llama(64, 128, 16, false), llama(72, 96, 12, true), llama(64, 96, 16, true, false)}) {
    RotationOptions o;
    o.seed = 5;
    expect_invariant(m, o, tokens);
    o.odd_size = OddSizeRotation::Dense;
    expect_invariant(m, o, tokens);
    o = *parse_rotation("hadamard-offline", 6);
    expect_invariant(m, o, tokens);
    o.attn_out = true;  // both: exact too
    expect_invariant(m, o, tokens);
  }
}

TEST(Rotation, Deterministic) {
  const model::Model m = llama(72, 96, 12, false);
  model::Model a = m, b = m, c = m;
  RotationOptions o;
  o.seed = 3;
  rotate_model(a, o);
  rotate_model(b, o);
  o.seed = 4;
  rotate_model(c, o);
  EXPECT_EQ(a.layers[1].w_down.to_f32_vector(), b.layers[1].w_down.to_f32_vector());
  EXPECT_NE(a.layers[1].w_down.to_f32_vector(), c.layers[1].w_down.to_f32_vector());
}

TEST(Rotation, RefusesWhatItCannotRotate) {
  model::Model m = llama(64, 128, 16, false);
  rotate_model(m, {});
  EXPECT_THROW(rotate_model(m, {}), Error);  // already rotated
  Gpt2Dims d;
  model::Model g = random_gpt2_model(d, 5, "random gpt2");
  try {
    rotate_model(g, {});
    FAIL() << "gpt2 rotated";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LayerNorm"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_rotation("givens", 0), Error);
  EXPECT_FALSE(parse_rotation("none", 0).has_value());
  EXPECT_FALSE(parse_rotation("hadamard-offline", 0)->ffn_hidden);
}

// The online transform survives the qforge folder; the other layouts refuse it.
TEST(Rotation, OnlineTransformRoundTripsAndOtherFormatsRefuse) {
  model::Model m = llama(72, 96, 12, false);
  rotate_model(m, {});
  QuantizeOptions q;
  q.weights = quant::Scheme::parse("int8:channel");
  const model::QuantizedModel qm = quantize_model(m, {}, q);
  const auto dir = std::filesystem::temp_directory_path() / "qf_rotation_roundtrip";
  std::filesystem::remove_all(dir);
  const tokenizer::Vocab vocab;
  std::filesystem::create_directories(dir / "src");
  std::ofstream(dir / "src" / "tokenizer.json") << "{}";
  const std::string src = (dir / "src").string();
  model::save_quantized_folder((dir / "q").string(), qm, vocab, src);
  const model::QuantizedModel back = model::load_quantized_folder((dir / "q").string());
  const auto& t = back.model.layers[2].transform[static_cast<size_t>(InputSite::FfnHidden)];
  ASSERT_TRUE(t.active());
  EXPECT_EQ(t.block, 32);
  EXPECT_EQ(t.mix.to_f32_vector(),
            qm.model.layers[2].transform[static_cast<size_t>(InputSite::FfnHidden)].mix.to_f32_vector());
  const std::vector<int32_t> tokens = random_tokens(20, 101, 2);
  EXPECT_EQ(logits_of(model::dequantized_model(back), tokens).to_f32_vector(),
            logits_of(model::dequantized_model(qm), tokens).to_f32_vector());
  try {
    model::save_quantized(model::QuantizedFormat::Gptq, (dir / "gptq").string(), qm, vocab, src);
    FAIL() << "gptq wrote an online transform";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("online Hadamard"), std::string::npos) << e.what();
  }
  // A mix that is not orthogonal is a malformed file.
  model::QuantizedModel bad = qm;
  Tensor mix = bad.model.layers[0].transform[static_cast<size_t>(InputSite::FfnHidden)].mix.clone();
  mix.mutable_data<float>()[0] *= 2.0f;
  bad.model.layers[0].transform[static_cast<size_t>(InputSite::FfnHidden)].mix = mix;
  EXPECT_THROW(model::save_quantized_folder((dir / "bad").string(), bad, vocab, src), Error);
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------
// Learned refinements (algo/rotation_learning.h)

std::vector<calib::TokenSequence> random_calibration(int n, int64_t len, int64_t vocab, uint64_t seed) {
  std::vector<calib::TokenSequence> out;
  for (int i = 0; i < n; ++i) out.push_back(random_tokens(len, vocab, seed + static_cast<uint64_t>(i)));
  return out;
}

RotationRefinement random_refinement(const model::Model& m, uint64_t seed) {
  const model::ModelConfig& c = m.config;
  RotationRefinement r;
  r.residual = quant::random_orthogonal(c.hidden_size, seed);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    r.attn_out.push_back(quant::random_orthogonal(c.q_dim(), seed + 10 + l));
    r.ffn_hidden.push_back(quant::random_orthogonal(c.intermediate_size, seed + 20 + l));
  }
  return r;
}

double orthogonality_error(const std::vector<float>& m) {
  const auto n = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(m.size()))));
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double d = 0.0;
      for (int64_t k = 0; k < n; ++k) d += static_cast<double>(m[i * n + k]) * m[j * n + k];
      worst = std::max(worst, std::fabs(d - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

RotationLearningOptions learning_options(const char* weights, int act_bits) {
  RotationLearningOptions o;
  o.weights = quant::Scheme::parse(weights);
  o.act_quant = act_bits > 0;
  o.act_bits = act_bits;
  o.n_threads = 1;
  return o;
}

TEST(RotationRefinement, KeepsTheLogits) {
  const std::vector<int32_t> tokens = random_tokens(40, 101, 4);
  for (const auto& m : {llama(64, 128, 16, false), llama(72, 96, 12, true)}) {
    model::Model r = m;
    rotate_model(r, {});
    refine_rotation(r, random_refinement(r, 7));
    EXPECT_LT(rel_diff(logits_of(m, tokens), logits_of(r, tokens)), 1e-5) << m.source;
    const auto& t = r.layers[1].transform[static_cast<size_t>(InputSite::FfnHidden)];
    EXPECT_EQ(t.block, 1);  // the online transform became one dense matrix
    EXPECT_EQ(t.mix.numel(), m.config.intermediate_size * m.config.intermediate_size);
  }
}

TEST(RotationRefinement, RefusesAModelThatIsNotRotatedThere) {
  model::Model m = llama(64, 128, 16, false);
  RotationRefinement only_online = random_refinement(m, 3);
  only_online.residual.clear();
  EXPECT_THROW(refine_rotation(m, only_online), Error);  // no online transform to refine
  EXPECT_THROW(refine_rotation(m, random_refinement(m, 3)), Error);  // norms not folded
  rotate_model(m, {});
  RotationRefinement wrong = random_refinement(m, 3);
  wrong.residual.resize(10);
  EXPECT_THROW(refine_rotation(m, wrong), Error);
}

// The objective's (sub)gradient against central differences along random
// directions, at a random orthogonal point, for symmetric and asymmetric
// weight groups, weight-only and with int4 activations.
TEST(RotationLearning, GradientMatchesFiniteDifferences) {
  model::Model m = llama(64, 96, 16, false);
  rotate_model(m, {});
  const auto calib = random_calibration(4, 32, 101, 40);
  for (const auto& [weights, act_bits] : {std::pair{"int4:g32", 4}, std::pair{"int3:g16:asym", 0}}) {
    const RotationLearningOptions o = learning_options(weights, act_bits);
    const RotationRefinement at = random_refinement(m, 11);
    RotationRefinement grad;
    rotation_objective(m, calib, o, &at, &grad);
    ASSERT_EQ(grad.residual.size(), at.residual.size());
    ASSERT_EQ(grad.ffn_hidden.size(), m.layers.size());
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal;
    for (int trial = 0; trial < 3; ++trial) {
      RotationRefinement dir = at;
      double predicted = 0.0;
      auto perturb = [&](std::vector<float>& d, const std::vector<float>& g) {
        for (size_t i = 0; i < d.size(); ++i) {
          const double v = normal(rng);
          d[i] = static_cast<float>(v);
          predicted += v * g[i];
        }
      };
      perturb(dir.residual, grad.residual);
      for (size_t l = 0; l < m.layers.size(); ++l) {
        perturb(dir.attn_out[l], grad.attn_out[l]);
        perturb(dir.ffn_hidden[l], grad.ffn_hidden[l]);
      }
      // Small: the maxima switch elements along the way (kinks), and the
      // difference converges to the subgradient only as eps shrinks.
      const double eps = 3e-5;
      auto shifted = [&](double s) {
        RotationRefinement p = at;
        auto add = [&](std::vector<float>& x, const std::vector<float>& d) {
          for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(x[i] + s * d[i]);
        };
        add(p.residual, dir.residual);
        for (size_t l = 0; l < m.layers.size(); ++l) {
          add(p.attn_out[l], dir.attn_out[l]);
          add(p.ffn_hidden[l], dir.ffn_hidden[l]);
        }
        return rotation_objective(m, calib, o, &p);
      };
      const double numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
      EXPECT_NEAR(numeric, predicted, 0.05 * std::fabs(predicted) + 1e-3) << weights << " trial " << trial;
    }
  }
}

TEST(RotationLearning, LowersTheObjectiveAndKeepsTheModel) {
  const model::Model m = llama(64, 96, 16, false);
  model::Model r = m;
  rotate_model(r, {});
  const auto calib = random_calibration(4, 32, 101, 50);
  RotationLearningOptions o = learning_options("int4:g32", 4);
  o.steps = 30;
  o.lr = 0.2;
  RotationLearningReport report;
  const RotationRefinement learned = learn_rotation(r, calib, o, &report);
  EXPECT_LT(report.final_loss, 0.95 * report.initial_loss);
  EXPECT_GT(report.best_step, 0);
  EXPECT_LT(orthogonality_error(learned.residual), 1e-5);
  for (const auto& u : learned.ffn_hidden) EXPECT_LT(orthogonality_error(u), 1e-5);
  const RotationRefinement again = learn_rotation(r, calib, o);
  EXPECT_EQ(again.residual, learned.residual);  // deterministic
  refine_rotation(r, learned);
  const std::vector<int32_t> tokens = random_tokens(40, 101, 4);
  EXPECT_LT(rel_diff(logits_of(m, tokens), logits_of(r, tokens)), 1e-5);
  // The refined model at the identity is where learning stopped.
  EXPECT_NEAR(rotation_objective(r, calib, o), report.final_loss, 1e-3 * report.final_loss);
  o.steps = 0;
  EXPECT_THROW(learn_rotation(m, calib, o), Error);  // not rotated
  o.weights = quant::Scheme::parse("nf4");
  EXPECT_THROW(learn_rotation(r, calib, o), Error);
}

// ---------------------------------------------------------------------------
// stories260K

struct Stories {
  model::Model m;
  std::vector<calib::TokenSequence> calib;
  std::vector<eval::Window> eval;
};

// As scripts/quantize_table.sh: calibrate on the first half of the lines,
// evaluate on lines of the second half (fewer of them, to stay fast).
Stories stories() {
  Stories s;
  s.m = model::load_model(test::shared_data_path(kStories));
  const auto tok = tokenizer::make_tokenizer(model::load_vocab(test::shared_data_path(kStories)));
  std::ifstream f(test::shared_data_path("stories260K/tinystories_valid_sample_30KB.txt"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  std::string first;
  for (size_t i = 0; i < lines.size() / 2; ++i) first += lines[i] + "\n";
  s.calib = select_calibration(s.m, tok->encode(first, false), 32, 128, Selection::Random, 1, 1);
  std::string second;
  for (size_t i = lines.size() / 2; i < lines.size(); ++i) second += lines[i] + "\n";
  eval::ProtocolOptions po;
  po.protocol = eval::Protocol::Lines;
  po.n_ctx = 256;
  po.max_windows = 4;
  s.eval = eval::make_windows(*tok, second, po);
  return s;
}

const Stories& shared_stories() {
  static const Stories s = stories();
  return s;
}

double kld(const model::Model& base, const model::Model& q, const std::vector<eval::Window>& windows) {
  runtime::RuntimeOptions ro;
  ro.n_threads = 1;
  runtime::Runtime a(base, ro), b(q, ro);
  return eval::evaluate(b, &a, windows).kl_mean();
}

double quantized_kld(const Stories& s, const char* weights, int act_bits, bool rotate, int64_t learn_steps = 0) {
  model::Model m = s.m;
  if (rotate) rotate_model(m, *parse_rotation("hadamard", 1));
  if (learn_steps > 0) {
    RotationLearningOptions o = learning_options(weights, act_bits);
    o.steps = learn_steps;
    o.lr = 0.2;
    refine_rotation(m, learn_rotation(m, s.calib, o));
  }
  QuantizeOptions q;
  q.method = Method::Gptq;
  q.weights = quant::Scheme::parse(weights);
  q.n_threads = 1;
  if (act_bits) {
    q.acts.enabled = true;
    q.acts.bits = act_bits;
  }
  return kld(s.m, model::dequantized_model(quantize_model(m, s.calib, q)), s.eval);
}

TEST(RotationStories, LogitsUnchanged) {
  QF_REQUIRE_SHARED_DATA(kStories);
  const Stories& s = shared_stories();
  for (const auto& seq : {s.eval[0].tokens, s.eval[1].tokens}) {
    RotationOptions o;
    expect_invariant(s.m, o, seq);
    o.odd_size = OddSizeRotation::Dense;
    expect_invariant(s.m, o, seq);
  }
}

TEST(RotationStories, KurtosisDrops) {
  QF_REQUIRE_SHARED_DATA(kStories);
  const Stories& s = shared_stories();
  model::Model r = s.m;
  rotate_model(r, {});
  const std::vector<calib::TokenSequence> seqs(s.calib.begin(), s.calib.begin() + 8);
  const auto before = activation_outliers(s.m, seqs, 1), after = activation_outliers(r, seqs, 1);
  ASSERT_EQ(before.size(), after.size());
  double worst_before = 0.0, worst_after = 0.0;
  for (size_t i = 0; i < before.size(); ++i) {
    worst_before = std::max(worst_before, before[i].stats.kurtosis);
    worst_after = std::max(worst_after, after[i].stats.kurtosis);
    if (before[i].site == InputSite::AttnIn || before[i].site == InputSite::FfnHidden) {
      EXPECT_LT(after[i].stats.kurtosis, before[i].stats.kurtosis)
          << "block " << before[i].layer << " " << model::input_site_name(before[i].site);
    }
  }
  EXPECT_LT(worst_after, 0.5 * worst_before);
}

// The factors docs/results.md measures on the whole second half (scripts/
// quantize_table.sh), here on its first lines so that the test takes seconds.
// W4A4 (int4 g32 weights, int4 per-token activations): random rotation +
// GPTQ at 0.56x GPTQ's KLD there (0.55x here), the learned rotation (100
// Cayley steps) at 0.39x there; the target is 0.5x.
TEST(RotationStories, GptqW4A4) {
  QF_REQUIRE_SHARED_DATA(kStories);
  const Stories& s = shared_stories();
  const double plain = quantized_kld(s, "int4:g32", 4, false), rotated = quantized_kld(s, "int4:g32", 4, true),
               learned = quantized_kld(s, "int4:g32", 4, true, 100);
  EXPECT_LT(rotated, 0.62 * plain) << "gptq " << plain << ", rotated " << rotated;
  EXPECT_LT(learned, 0.5 * plain) << "gptq " << plain << ", learned rotation " << learned;
  EXPECT_LT(learned, rotated);
}

TEST(RotationStories, GptqWeightOnlyInt4) {
  QF_REQUIRE_SHARED_DATA(kStories);
  const Stories& s = shared_stories();
  const double plain = quantized_kld(s, "int4:g32", 0, false), rotated = quantized_kld(s, "int4:g32", 0, true);
  // Measured 1.14x here, 0.98x on the whole half: the norm folding costs the
  // weights what the rotation gains them (docs/results.md). A broken fold or
  // transform would be far beyond this bound.
  EXPECT_LT(rotated, 1.3 * plain) << "gptq " << plain << ", rotated " << rotated;
  EXPECT_GT(rotated, 0.0);
}

}  // namespace
}  // namespace qf::algo
