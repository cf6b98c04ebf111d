// train_qat on small random Llama (GQA, biases) and GPT-2 models: the KL
// falls, the exported model is the one the last step ran (its dequantized
// weights give the logits the trainer saw), blockwise training runs on both
// architectures, and a raised stop flag ends training with an error.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <vector>

#include <nlohmann/json.hpp>

#include "../model/test_models.h"
#include "model/linear_layers.h"
#include "model/quantized_checkpoint.h"
#include "quant/quantize.h"
#include "runtime/runtime.h"
#include "train/qat.h"

namespace qf::train {
namespace {

// Text with structure a model can fit: a repeated random phrase with noise.
std::vector<int32_t> tokens(int32_t vocab) {
  model::testing::Rng r(3);
  std::vector<int32_t> phrase(17);
  for (auto& t : phrase) t = r.below(vocab);
  std::vector<int32_t> t;
  for (int i = 0; i < 40; ++i)
    for (int32_t p : phrase) t.push_back(r.below(10) == 0 ? r.below(vocab) : p);
  return t;
}

// Mean KL(fp32 || other) over the positions of `toks` (one forward each).
double mean_kl(const model::Model& fp, const model::Model& other, const std::vector<int32_t>& toks) {
  runtime::Runtime a(fp, {.n_threads = 1}), b(other, {.n_threads = 1});
  const Tensor la = a.forward(toks), lb = b.forward(toks);
  const int64_t V = la.dim(1);
  double total = 0;
  for (int64_t t = 0; t < la.dim(0); ++t) {
    auto lsm = [&](const float* z, std::vector<double>& out) {
      double mx = z[0], sum = 0;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(z[i]));
      for (int64_t i = 0; i < V; ++i) sum += std::exp(z[i] - mx);
      out.resize(static_cast<size_t>(V));
      for (int64_t i = 0; i < V; ++i) out[static_cast<size_t>(i)] = z[i] - mx - std::log(sum);
    };
    std::vector<double> p, q;
    lsm(la.data<float>() + t * V, p);
    lsm(lb.data<float>() + t * V, q);
    for (int64_t i = 0; i < V; ++i) total += std::exp(p[static_cast<size_t>(i)]) * (p[static_cast<size_t>(i)] - q[static_cast<size_t>(i)]);
  }
  return total / static_cast<double>(la.dim(0));
}

// Every block linear RTN-quantized and dequantized.
model::Model rtn_model(const model::Model& m, const quant::Scheme& s) {
  model::QuantizedModel qm;
  qm.model = m;
  for (const model::LinearLayer& l : model::all_linears(m.config)) {
    Tensor& w = model::linear_weight(qm.model.layers[static_cast<size_t>(l.layer)], l.kind);
    qm.linears.push_back({l.name, quant::quantize(model::weight_out_in(l, w), s)});
    w = Tensor();
  }
  return model::dequantized_model(qm);
}

void check_trains(const model::Model& m, bool blockwise) {
  QatOptions o;
  o.weights = quant::Scheme::parse("int3:g16:asym");
  o.steps = blockwise ? 8 : 20;
  o.e2e_steps = blockwise ? 4 : 0;
  o.blockwise = blockwise;
  o.batch = 2;
  o.seqlen = 24;
  o.lr = 5e-4;
  o.n_threads = 2;
  QatReport rep;
  const auto toks = tokens(static_cast<int32_t>(m.config.vocab_size));
  const model::QuantizedModel qm = train_qat(m, toks, o, &rep);
  EXPECT_EQ(rep.steps, blockwise ? 8 * m.config.n_layers + 4 : 20);
  EXPECT_GT(rep.initial_loss, 0.0);
  EXPECT_EQ(qm.linears.size(), model::all_linears(m.config).size());
  EXPECT_GT(rep.train_bytes, 0u);
  // The exported codes, dequantized, are closer to fp32 on the training text
  // than round-to-nearest with the same scheme.
  const std::vector<int32_t> text(toks.begin(), toks.begin() + 48);
  const double qat = mean_kl(m, model::dequantized_model(qm), text);
  const double rtn = mean_kl(m, rtn_model(m, o.weights), text);
  EXPECT_GT(qat, 0.0);
  // (Block-wise MSE steps aim at the logits only indirectly: a smaller margin.)
  EXPECT_LT(qat, (blockwise ? 0.9 : 0.8) * rtn) << "QAT " << qat << " vs RTN " << rtn;
}

TEST(TrainQat, LlamaEndToEnd) { check_trains(model::testing::two_layer_llama_model(7), false); }
TEST(TrainQat, Gpt2EndToEnd) { check_trains(model::testing::random_gpt2_model({}, 11), false); }
TEST(TrainQat, LlamaBlockwise) { check_trains(model::testing::two_layer_llama_model(7), true); }
TEST(TrainQat, Gpt2Blockwise) { check_trains(model::testing::random_gpt2_model({}, 11), true); }

TEST(TrainQat, StopFlagEndsTrainingWithAnError) {
  const model::Model m = model::testing::two_layer_llama_model(7);
  std::atomic<bool> stop{false};
  QatOptions o;
  o.weights = quant::Scheme::parse("int4:g32");
  o.steps = 100;
  o.batch = 1;
  o.seqlen = 8;
  o.stop = &stop;
  o.progress = [&](const QatProgress& p) {
    if (p.step == 3) stop.store(true);
  };
  try {
    train_qat(m, tokens(static_cast<int32_t>(m.config.vocab_size)), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("interrupted during training at step 4 of 100"), std::string::npos) << e.what();
  }
}

TEST(TrainQat, RejectsBadOptions) {
  const model::Model m = model::testing::two_layer_llama_model(7);
  QatOptions o;
  o.weights = quant::Scheme::parse("nf4");
  const auto toks = tokens(static_cast<int32_t>(m.config.vocab_size));
  EXPECT_THROW(train_qat(m, toks, o), Error);
  o.weights = quant::Scheme::parse("int4:g32");
  o.seqlen = 100000;
  EXPECT_THROW(train_qat(m, toks, o), Error);
}

}  // namespace
}  // namespace qf::train
