#include "train/qat.h"

#include <chrono>
#include <cmath>
#include <numbers>
#include <optional>
#include <random>

#include "calib/calibration_set.h"
#include "core/error.h"
#include "model/linear_layers.h"
#include "train/adam.h"
#include "train/fake_quant.h"
#include "train/network.h"
#include "train/ops.h"

namespace qf::train {
namespace {

using Clock = std::chrono::steady_clock;

// One trained linear layer: latent weight, quantizer parameters, their
// gradients and Adam states.
struct Trainable {
  model::LinearLayer layer;
  std::vector<float> w;   // latent [out, in]
  FakeQuantParams fq;
  std::vector<float> wq;  // what the forward multiplies
  std::vector<float> dwq, dw, ds, dz;
  AdamState aw, as, az;

  uint64_t bytes() const {
    const size_t n = w.size() * 7 + fq.scale.size() * 6 + fq.zero.size() * 2;
    return n * sizeof(float);
  }
};

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

bool all_finite(const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}

class Trainer {
 public:
  Trainer(const model::Model& m, std::span<const int32_t> tokens, const QatOptions& o)
      : m_(m), tokens_(tokens), o_(o), rng_(o.seed),
        student_(m, {o.n_threads, o.int8_activations}), teacher_(m, {o.n_threads, false}) {
    for (size_t i = 0; i < student_.linears().size(); ++i) {
      const model::LinearLayer& l = student_.linears()[i];
      Trainable t;
      t.layer = l;
      const Tensor wo = model::weight_out_in(l, model::linear_weight(m.layers[static_cast<size_t>(l.layer)], l.kind));
      QF_CHECK(wo.dtype() == DType::F32 && !wo.empty(), "{}: {} has no float weight to train", m.source, l.name);
      const float* src = wo.data<float>();
      t.w.assign(src, src + wo.numel());
      QF_CHECK(all_finite(t.w), "{}: {} holds NaN or Inf weights", m.source, l.name);
      t.fq = with_context(l.name, [&] { return init_fake_quant(wo, o.weights); });
      t.wq.resize(t.w.size());
      t.dwq.resize(t.w.size());
      t.dw.resize(t.w.size());
      t.ds.resize(t.fq.scale.size());
      t.dz.resize(t.fq.zero.size());
      teacher_w_.push_back(t.w);
      params_.push_back(std::move(t));
    }
    for (size_t i = 0; i < params_.size(); ++i) {
      teacher_.set_weight(i, teacher_w_[i].data());
      student_.set_weight(i, params_[i].wq.data());
    }
    for (auto& t : params_) dwq_ptrs_.push_back(t.dwq.data());
  }

  model::QuantizedModel run(QatReport& report) {
    const auto t0 = Clock::now();
    if (o_.blockwise) blockwise(report);
    const int64_t e2e = o_.blockwise ? o_.e2e_steps : o_.steps;
    const auto t1 = Clock::now();
    if (e2e > 0) end_to_end(e2e, report);
    const auto t2 = Clock::now();
    if (auto bad = nonfinite_layer(); bad)
      fail("training diverged at step {}: {} holds non-finite values after the last update; nothing written "
           "(try a lower --lr)",
           report.steps, *bad);
    report.seconds = std::chrono::duration<double>(t2 - t0).count();
    const double phase = e2e > 0 ? std::chrono::duration<double>(t2 - t1).count()
                                 : std::chrono::duration<double>(t1 - t0).count();
    const int64_t phase_steps = e2e > 0 ? e2e : report.steps;
    report.seconds_per_step = phase_steps > 0 ? phase / static_cast<double>(phase_steps) : 0.0;
    report.train_bytes = student_.tape_bytes() + teacher_.tape_bytes() + buffer_bytes_;
    for (const auto& t : params_) report.train_bytes += t.bytes();
    return export_model();
  }

 private:
  void refresh(Trainable& t) { fake_quant_forward(t.w.data(), t.fq, t.wq.data()); }

  // Gradients of the layer's parameters from dwq, then one Adam step.
  void update(Trainable& t, int64_t step, int64_t total) {
    std::fill(t.ds.begin(), t.ds.end(), 0.0f);
    std::fill(t.dz.begin(), t.dz.end(), 0.0f);
    fake_quant_backward(t.w.data(), t.fq, t.dwq.data(), t.dw.data(), t.ds.data(), t.dz.empty() ? nullptr : t.dz.data());
    // Cosine decay from the base rate to 0 over the phase.
    const double decay =
        0.5 * (1.0 + std::cos(std::numbers::pi * static_cast<double>(step - 1) / static_cast<double>(total)));
    const double lr = o_.lr * decay, slr = (o_.scale_lr < 0 ? o_.lr : o_.scale_lr) * decay;
    adam_step(t.w.data(), t.dw.data(), static_cast<int64_t>(t.w.size()), t.aw, lr, step);
    adam_step(t.fq.scale.data(), t.ds.data(), static_cast<int64_t>(t.ds.size()), t.as, slr, step);
    if (!t.dz.empty()) adam_step(t.fq.zero.data(), t.dz.data(), static_cast<int64_t>(t.dz.size()), t.az, slr, step);
  }

  // Adam steps may push values anywhere; a NaN is reported (next step's
  // check) before clamping could hide it.
  void clamp_all() {
    if (nonfinite_layer()) return;
    for (auto& t : params_) clamp_fake_quant(t.fq);
  }

  std::optional<std::string> nonfinite_layer() const {
    for (const auto& t : params_)
      if (!all_finite(t.w) || !all_finite(t.fq.scale) || !all_finite(t.fq.zero)) return "layer " + t.layer.name;
    return std::nullopt;
  }

  void check_stop(const std::string& phase, int64_t step, int64_t steps) const {
    if (o_.stop && o_.stop->load())
      fail("interrupted during {} at step {} of {}; nothing written", phase, step, steps);
  }

  [[noreturn]] void diverged(const std::string& phase, int64_t step, double loss, const std::string& where) const {
    fail("training diverged at step {} ({}): loss is {}; first non-finite values in {}; nothing written (try a lower "
         "--lr)",
         step, phase, loss, where);
  }

  // B random windows of T tokens from the calibration text.
  void sample_windows(std::vector<int32_t>& out) {
    const int64_t T = o_.seqlen, B = o_.batch;
    const uint64_t span = static_cast<uint64_t>(static_cast<int64_t>(tokens_.size()) - T + 1);
    out.resize(static_cast<size_t>(B * T));
    for (int64_t b = 0; b < B; ++b) {
      const uint64_t off = rng_() % span;
      std::copy_n(tokens_.begin() + static_cast<std::ptrdiff_t>(off), T, out.begin() + b * T);
    }
  }

  void end_to_end(int64_t steps, QatReport& report) {
    const int64_t B = o_.batch, T = o_.seqlen, N = B * T, V = m_.config.vocab_size;
    std::vector<int32_t> tok;
    std::vector<float> tlogp(static_cast<size_t>(N * V)), slogits(tlogp.size()), dlogits(tlogp.size());
    buffer_bytes_ += 3 * tlogp.size() * sizeof(float);
    const ParallelFor& pf = student_.parallel_for();
    for (int64_t step = 1; step <= steps; ++step) {
      check_stop("training", step, steps);
      sample_windows(tok);
      teacher_.forward(tok.data(), B, T, tlogp.data());
      log_softmax_rows(tlogp.data(), N, V, pf);
      if (auto bad = nonfinite_layer(); bad) diverged("end-to-end", step, NAN, *bad);
      for (auto& t : params_) refresh(t);
      student_.forward(tok.data(), B, T, slogits.data());
      const double loss = kl_loss(tlogp.data(), slogits.data(), N, V, dlogits.data(), pf);
      if (!std::isfinite(loss)) diverged("end-to-end", step, loss, first_nonfinite_activation(N));
      if (step == 1) report.initial_loss = loss;
      report.final_loss = loss;
      student_.backward(dlogits.data(), dwq_ptrs_);
      for (auto& t : params_) update(t, step, steps);
      clamp_all();
      ++report.steps;
      if (o_.progress) o_.progress({"qat", step, steps, loss});
    }
  }

  std::string first_nonfinite_activation(int64_t N) const {
    const int64_t H = m_.config.hidden_size;
    for (int64_t l = 0; l < m_.config.n_layers; ++l)
      if (!all_finite(student_.block_output(l), N * H))
        return fmt::format("block {} ({})", l, model::block_prefix(m_.config, l));
    return "the head (logits)";
  }

  void blockwise(QatReport& report) {
    const model::ModelConfig& c = m_.config;
    const int64_t T = o_.seqlen, H = c.hidden_size, B = o_.batch;
    const int64_t available = static_cast<int64_t>(tokens_.size()) / T;
    const int64_t P = std::max<int64_t>(1, std::min(o_.block_pool, available));
    const std::vector<calib::TokenSequence> pool = calib::sample_sequences(tokens_, P, T, o_.seed);
    std::vector<int32_t> all;
    for (const auto& s : pool) all.insert(all.end(), s.begin(), s.end());
    const size_t rows_h = static_cast<size_t>(P * T * H);
    // Float inputs of every block over the pool (fp[l] feeds block l), then the
    // quantized chain's input, advanced block by block.
    std::vector<std::vector<float>> fp(static_cast<size_t>(c.n_layers + 1), std::vector<float>(rows_h));
    teacher_.embed(all.data(), P, T, fp[0].data());
    for (int64_t l = 0; l < c.n_layers; ++l)
      for (int64_t b0 = 0; b0 < P; b0 += B) {
        const int64_t nb = std::min(B, P - b0);
        teacher_.block_forward(l, fp[static_cast<size_t>(l)].data() + b0 * T * H, nb, T,
                               fp[static_cast<size_t>(l + 1)].data() + b0 * T * H);
      }
    std::vector<float> xq = fp[0], next(rows_h);
    buffer_bytes_ += (fp.size() + 2) * rows_h * sizeof(float);
    const int64_t nb = std::min(B, P);
    std::vector<float> xin(static_cast<size_t>(nb * T * H)), target(xin.size()), y(xin.size()), dy(xin.size());
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string phase = fmt::format("block {}", l);
      std::vector<Trainable*> mine;
      for (auto& t : params_)
        if (t.layer.layer == l) mine.push_back(&t);
      for (int64_t step = 1; step <= o_.steps; ++step) {
        check_stop(phase, step, o_.steps);
        for (int64_t b = 0; b < nb; ++b) {
          const int64_t w = static_cast<int64_t>(rng_() % static_cast<uint64_t>(P));
          std::copy_n(xq.begin() + w * T * H, T * H, xin.begin() + b * T * H);
          std::copy_n(fp[static_cast<size_t>(l + 1)].begin() + w * T * H, T * H, target.begin() + b * T * H);
        }
        if (auto bad = nonfinite_layer(); bad) diverged(phase, step, NAN, *bad);
        for (auto* t : mine) refresh(*t);
        student_.block_forward(l, xin.data(), nb, T, y.data());
        const double loss = mse_loss(y.data(), target.data(), static_cast<int64_t>(y.size()), dy.data());
        if (!std::isfinite(loss)) diverged(phase, step, loss, fmt::format("block {} ({})", l, model::block_prefix(c, l)));
        student_.block_backward(l, dy.data(), nullptr, dwq_ptrs_);
        for (auto* t : mine) update(*t, step, o_.steps);
        clamp_all();
        ++report.steps;
        if (o_.progress) o_.progress({phase, step, o_.steps, loss});
      }
      for (auto* t : mine) refresh(*t);
      for (int64_t b0 = 0; b0 < P; b0 += B) {
        const int64_t n = std::min(B, P - b0);
        student_.block_forward(l, xq.data() + b0 * T * H, n, T, next.data() + b0 * T * H);
      }
      std::swap(xq, next);
    }
  }

  model::QuantizedModel export_model() {
    model::QuantizedModel out;
    out.model = m_;
    for (auto& t : params_) {
      out.linears.push_back({t.layer.name, export_quantized(t.w.data(), t.fq)});
      model::linear_weight(out.model.layers[static_cast<size_t>(t.layer.layer)], t.layer.kind) = Tensor();
    }
    if (o_.int8_activations) {
      model::ActivationQuant aq;
      aq.mode = model::ActQuantMode::DynamicToken;
      aq.bits = 8;
      aq.symmetric = true;
      for (auto& L : out.model.layers) L.act.fill(aq);
    }
    nlohmann::json j;
    j["method"] = "qat";
    j["weights"] = o_.weights.to_string();
    j["qat"] = {{"steps", o_.steps},     {"batch", o_.batch},         {"seqlen", o_.seqlen},
                {"lr", o_.lr},           {"scale_lr", o_.scale_lr < 0 ? o_.lr : o_.scale_lr},
                {"blockwise", o_.blockwise}, {"e2e_steps", o_.e2e_steps}, {"seed", o_.seed},
                {"loss", o_.blockwise ? "block-mse" : "kl"}};
    if (o_.int8_activations) j["acts"] = {{"bits", 8}, {"symmetric", true}, {"mode", "dynamic-token"}};
    out.info = j;
    return out;
  }

  const model::Model& m_;
  std::span<const int32_t> tokens_;
  QatOptions o_;
  std::mt19937_64 rng_;
  Network student_, teacher_;
  std::vector<Trainable> params_;
  std::vector<std::vector<float>> teacher_w_;
  std::vector<float*> dwq_ptrs_;
  uint64_t buffer_bytes_ = 0;
};

}  // namespace

model::QuantizedModel train_qat(const model::Model& m, std::span<const int32_t> tokens, const QatOptions& o,
                                QatReport* report) {
  QF_CHECK(o.steps >= 1, "--steps must be at least 1, got {}", o.steps);
  QF_CHECK(o.batch >= 1 && o.seqlen >= 2, "batch {} x seqlen {}: need at least 1 x 2", o.batch, o.seqlen);
  QF_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number, got {}", o.lr);
  QF_CHECK(o.scale_lr < 0 || std::isfinite(o.scale_lr), "--scale-lr must be a number, got {}", o.scale_lr);
  QF_CHECK(o.e2e_steps >= 0, "--e2e-steps must be >= 0");
  QF_CHECK(o.weights.format == quant::Format::Int,
           "quantization-aware training learns integer scales and zero points; scheme '{}' is a codebook or float "
           "format it cannot train (use int2..int8)",
           o.weights.to_string());
  QF_CHECK(static_cast<int64_t>(tokens.size()) >= o.seqlen,
           "calibration text has {} tokens, fewer than one window of {} (--seqlen)", tokens.size(), o.seqlen);
  QF_CHECK(m.config.arch != model::Architecture::GPT2 || o.seqlen <= m.config.max_positions,
           "--seqlen {} exceeds GPT-2's {} positions", o.seqlen, m.config.max_positions);
  QatReport local;
  Trainer trainer(m, tokens, o);
  return trainer.run(report ? *report : local);
}

}  // namespace qf::train
