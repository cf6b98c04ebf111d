// The trainer's differentiable forward against runtime::Runtime (logits within
// 1e-4), and its hand-written backward against central finite differences:
// a Llama block with grouped-query attention, RoPE and biases, a GPT-2 block,
// the whole model under the KL loss, and the KL loss alone.
#include <gtest/gtest.h>

#include <random>

#include <cmath>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "../model/test_models.h"
#include "model/linear_layers.h"
#include "model/model.h"
#include "runtime/runtime.h"
#include "shared_data.h"
#include "train/network.h"
#include "train/ops.h"

namespace qf::train {
namespace {

using model::testing::Rng;

// The model's own weights as [out, in] matrices, set into the network.
struct Weights {
  std::vector<std::vector<float>> w;
  Weights(const model::Model& m, Network& net) {
    for (size_t i = 0; i < net.linears().size(); ++i) {
      const auto& l = net.linears()[i];
      const Tensor t = model::weight_out_in(l, model::linear_weight(m.layers[static_cast<size_t>(l.layer)], l.kind));
      w.emplace_back(t.data<float>(), t.data<float>() + t.numel());
    }
    for (size_t i = 0; i < w.size(); ++i) net.set_weight(i, w[i].data());
  }
};

std::vector<int32_t> random_tokens(int64_t n, int32_t vocab, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = r.below(vocab);
  return t;
}

std::vector<float> random_vector(size_t n, uint64_t seed, float stddev = 1.0f) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = r.normal(stddev);
  return v;
}

double dot(const std::vector<float>& a, const float* b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Central difference of f along `dir` at p.
double directional_fd(const std::function<double()>& f, float* p, const std::vector<float>& dir, float eps) {
  std::vector<float> saved(p, p + dir.size());
  for (size_t i = 0; i < dir.size(); ++i) p[i] = saved[i] + eps * dir[i];
  const double fp = f();
  for (size_t i = 0; i < dir.size(); ++i) p[i] = saved[i] - eps * dir[i];
  const double fm = f();
  std::copy(saved.begin(), saved.end(), p);
  return (fp - fm) / (2.0 * eps);
}

constexpr float kEps = 2e-3f;

double norm(const float* v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

// Relative to the directional derivative, and to |grad| |dir| (its largest
// possible size) for directions that happen to cancel out.
void expect_close(double analytic, double numeric, double bound, const std::string& what) {
  EXPECT_NEAR(analytic, numeric, 2e-2 * std::max(std::abs(analytic), std::abs(numeric)) + 1e-3 * bound + 1e-5)
      << what << ": analytic " << analytic << ", finite difference " << numeric;
}

void check_logits_match_runtime(const model::Model& m) {
  Network net(m, {.n_threads = 2});
  Weights w(m, net);
  const int64_t B = 2, T = 9, V = m.config.vocab_size;
  const auto tok = random_tokens(B * T, static_cast<int32_t>(V), 3);
  std::vector<float> logits(static_cast<size_t>(B * T * V));
  net.forward(tok.data(), B, T, logits.data());
  runtime::Runtime rt(m, {.n_threads = 2});
  for (int64_t b = 0; b < B; ++b) {
    rt.reset();
    const Tensor ref = rt.forward(std::span<const int32_t>(tok.data() + b * T, static_cast<size_t>(T)));
    const float* r = ref.data<float>();
    float worst = 0;
    for (int64_t i = 0; i < T * V; ++i) worst = std::max(worst, std::abs(r[i] - logits[static_cast<size_t>(b * T * V + i)]));
    EXPECT_LE(worst, 1e-4f) << "sequence " << b;
  }
}

TEST(TrainNetwork, LlamaLogitsMatchRuntime) { check_logits_match_runtime(model::testing::two_layer_llama_model(7)); }
TEST(TrainNetwork, Gpt2LogitsMatchRuntime) { check_logits_match_runtime(model::testing::random_gpt2_model({}, 11)); }

TEST(TrainNetwork, Stories260KLogitsMatchRuntime) {
  QF_REQUIRE_SHARED_DATA("stories260K/stories260K.bin");
  check_logits_match_runtime(model::load_model(test::shared_data_path("stories260K/stories260K.bin")));
}

// L = <R, block(x)>: its gradient with respect to x and every weight of the
// block, against finite differences along random directions.
void check_block_gradients(const model::Model& m, int64_t layer) {
  Network net(m, {.n_threads = 2});
  Weights w(m, net);
  const int64_t B = 2, T = 7, H = m.config.hidden_size, N = B * T;
  const auto tok = random_tokens(N, static_cast<int32_t>(m.config.vocab_size), 5);
  std::vector<float> x(static_cast<size_t>(N * H)), y(x.size()), dx(x.size());
  net.embed(tok.data(), B, T, x.data());
  const auto R = random_vector(x.size(), 9);
  auto loss = [&] {
    net.block_forward(layer, x.data(), B, T, y.data());
    return dot(R, y.data());
  };
  loss();
  std::vector<std::vector<float>> dw;
  std::vector<float*> dw_ptr;
  for (const auto& wi : w.w) dw.emplace_back(wi.size(), 0.0f);
  for (auto& d : dw) dw_ptr.push_back(d.data());
  net.block_backward(layer, R.data(), dx.data(), dw_ptr);

  const auto dir_x = random_vector(x.size(), 21);
  expect_close(dot(dir_x, dx.data()), directional_fd(loss, x.data(), dir_x, kEps),
               norm(dx.data(), dx.size()) * norm(dir_x.data(), dir_x.size()), "input x");
  int checked = 0;
  for (size_t i = 0; i < w.w.size(); ++i) {
    if (net.linears()[i].layer != layer) continue;
    const auto dir = random_vector(w.w[i].size(), 100 + i);
    expect_close(dot(dir, dw[i].data()), directional_fd(loss, w.w[i].data(), dir, kEps),
                 norm(dw[i].data(), dw[i].size()) * norm(dir.data(), dir.size()), net.linears()[i].name);
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(model::block_linears(m.config, layer).size()));
}

TEST(TrainNetwork, LlamaBlockGradientsGqaRope) { check_block_gradients(model::testing::two_layer_llama_model(7), 1); }
// Qwen3's per-head q/k RMSNorms (weights far from 1), before RoPE.
model::Model qwen3_model() {
  model::Model m = model::testing::two_layer_llama_model(7);
  m.config.model_type = "qwen3";
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> d(0.5f, 1.5f);
  auto norm = [&] {
    std::vector<float> v(static_cast<size_t>(m.config.head_dim));
    for (float& x : v) x = d(rng);
    return Tensor::from_f32(v, {m.config.head_dim});
  };
  for (auto& L : m.layers) {
    L.q_norm = norm();
    L.k_norm = norm();
  }
  return m;
}

TEST(TrainNetwork, Qwen3QkNormLogitsMatchRuntime) { check_logits_match_runtime(qwen3_model()); }
TEST(TrainNetwork, Qwen3QkNormBlockGradients) { check_block_gradients(qwen3_model(), 1); }

TEST(TrainNetwork, Gpt2BlockGradients) { check_block_gradients(model::testing::random_gpt2_model({}, 11), 0); }

TEST(TrainNetwork, SlidingWindowBlockGradients) {
  model::Model m = model::testing::two_layer_llama_model(7);
  m.config.sliding_window = 3;
  check_block_gradients(m, 0);
}

// The whole model under KL(teacher || student): head, final norm and every block.
void check_model_kl_gradients(const model::Model& m) {
  Network net(m, {.n_threads = 2});
  Weights w(m, net);
  const int64_t B = 2, T = 6, V = m.config.vocab_size, N = B * T;
  const auto tok = random_tokens(N, static_cast<int32_t>(V), 8);
  auto teacher = random_vector(static_cast<size_t>(N * V), 12, 2.0f);
  log_softmax_rows(teacher.data(), N, V, net.parallel_for());
  std::vector<float> logits(teacher.size()), dlogits(teacher.size());
  auto loss = [&] {
    net.forward(tok.data(), B, T, logits.data());
    return kl_loss(teacher.data(), logits.data(), N, V, nullptr, net.parallel_for());
  };
  net.forward(tok.data(), B, T, logits.data());
  kl_loss(teacher.data(), logits.data(), N, V, dlogits.data(), net.parallel_for());
  std::vector<std::vector<float>> dw;
  std::vector<float*> dw_ptr;
  for (const auto& wi : w.w) dw.emplace_back(wi.size(), 0.0f);
  for (auto& d : dw) dw_ptr.push_back(d.data());
  net.backward(dlogits.data(), dw_ptr);
  for (size_t i = 0; i < w.w.size(); ++i) {
    const auto dir = random_vector(w.w[i].size(), 300 + i);
    expect_close(dot(dir, dw[i].data()), directional_fd(loss, w.w[i].data(), dir, kEps),
                 norm(dw[i].data(), dw[i].size()) * norm(dir.data(), dir.size()), net.linears()[i].name);
  }
}

TEST(TrainNetwork, LlamaModelKlGradients) { check_model_kl_gradients(model::testing::two_layer_llama_model(7)); }
TEST(TrainNetwork, Qwen3ModelKlGradients) { check_model_kl_gradients(qwen3_model()); }
TEST(TrainNetwork, Gpt2ModelKlGradients) { check_model_kl_gradients(model::testing::random_gpt2_model({}, 11)); }

TEST(TrainNetwork, KlLossGradient) {
  const int64_t rows = 3, V = 17;
  auto teacher = random_vector(static_cast<size_t>(rows * V), 1, 1.5f);
  auto logits = random_vector(teacher.size(), 2, 1.5f);
  const ParallelFor serial = [](int64_t n, const std::function<void(int64_t, int64_t)>& fn) { fn(0, n); };
  log_softmax_rows(teacher.data(), rows, V, serial);
  std::vector<float> d(logits.size());
  const double kl = kl_loss(teacher.data(), logits.data(), rows, V, d.data(), serial);
  EXPECT_GT(kl, 0.0);
  // Reference KL in double, independently of kl_loss.
  auto reference = [&] {
    double total = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -1e300, sum = 0;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(logits[static_cast<size_t>(r * V + i)]));
      for (int64_t i = 0; i < V; ++i) sum += std::exp(logits[static_cast<size_t>(r * V + i)] - mx);
      for (int64_t i = 0; i < V; ++i) {
        const double lt = teacher[static_cast<size_t>(r * V + i)];
        const double ls = logits[static_cast<size_t>(r * V + i)] - mx - std::log(sum);
        total += std::exp(lt) * (lt - ls);
      }
    }
    return total / static_cast<double>(rows);
  };
  EXPECT_NEAR(kl, reference(), 1e-9);
  for (size_t i = 0; i < logits.size(); i += 5) {
    const float saved = logits[i];
    logits[i] = saved + 1e-3f;
    const double fp = reference();
    logits[i] = saved - 1e-3f;
    const double fm = reference();
    logits[i] = saved;
    EXPECT_NEAR(d[i], (fp - fm) / 2e-3, 1e-4) << "logit " << i;
  }
  // Identical distributions: zero loss and zero gradient.
  std::vector<float> same = teacher;
  EXPECT_NEAR(kl_loss(teacher.data(), same.data(), rows, V, d.data(), serial), 0.0, 1e-6);
  for (float g : d) EXPECT_NEAR(g, 0.0f, 1e-7f);
}

TEST(TrainNetwork, Int8ActivationsChangeTheForwardOnly) {
  const model::Model m = model::testing::two_layer_llama_model(7);
  Network exact(m, {.n_threads = 1});
  Network w8a8(m, {.n_threads = 1, .int8_activations = true});
  Weights we(m, exact), wq(m, w8a8);
  const int64_t T = 5, V = m.config.vocab_size;
  const auto tok = random_tokens(T, static_cast<int32_t>(V), 4);
  std::vector<float> a(static_cast<size_t>(T * V)), b(a.size());
  exact.forward(tok.data(), 1, T, a.data());
  w8a8.forward(tok.data(), 1, T, b.data());
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
  EXPECT_GT(diff, 1e-5);  // the activations were rounded
  EXPECT_LT(diff, 0.5);   // ... to int8, not destroyed
}

}  // namespace
}  // namespace qf::train
