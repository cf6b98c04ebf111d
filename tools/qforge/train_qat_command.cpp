#include "train_qat_command.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>

#include "algo/calibration.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/bench.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/quantized_formats.h"
#include "quant/scheme.h"
#include "quantized_output.h"
#include "tokenizer/tokenizer.h"
#include "train/qat.h"

namespace qf::cli {
namespace {

struct TrainQatCliOptions {
  std::string model;
  std::string output;
  std::string format = "qforge";
  std::string weights = "int4:g32";
  std::string acts;
  std::string calib;
  int64_t steps = 300;
  int64_t batch = 8;
  int64_t seqlen = 128;
  double lr = 1e-3;
  double scale_lr = -1.0;
  uint64_t seed = 0;
  bool blockwise = false;
  int64_t e2e_steps = 0;
  int threads = 0;
};

// SIGINT only raises this flag; the training loop checks it between steps
// and stops before anything is written.
std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

// Restores the previous SIGINT disposition when training ends, however it ends.
class SigintGuard {
 public:
  SigintGuard() {
    g_interrupted.store(false);
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintGuard() { sigaction(SIGINT, &old_, nullptr); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction old_ {};
};

// A GGUF file whose tensors are llama.cpp blocks is already quantized: the
// loader would dequantize it silently, and QAT from it would train toward a
// quantized teacher.
void check_float_input(const std::string& path) {
  QF_CHECK(!model::is_quantized_checkpoint(path),
           "{} is already a quantized checkpoint; train-qat starts from a float model (fp32/fp16/bf16)", path);
  if (!model::is_gguf_file(path)) return;
  const formats::GgufContents g = formats::read_gguf(path);
  for (const auto& t : g.tensors)
    QF_CHECK(t.type == formats::GgmlType::F32 || t.type == formats::GgmlType::F16 ||
                 t.type == formats::GgmlType::BF16,
             "{} is already quantized ({} is {}); train-qat starts from a float model (fp32/fp16/bf16)", path, t.name,
             formats::ggml_type_name(t.type));
}

void run_train_qat(const TrainQatCliOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  check_float_input(o.model);
  QF_CHECK(o.acts.empty() || o.acts == "int8",
           "--acts {}: train-qat simulates dynamic per-token symmetric int8 activations only (--acts int8)", o.acts);
  QF_CHECK(o.e2e_steps == 0 || o.blockwise, "--e2e-steps follows the block phase: give --blockwise too");
  train::QatOptions q;
  q.weights = scheme_for_output(o.format, quant::Scheme::parse(o.weights));
  QF_CHECK(q.weights.format == quant::Format::Int,
           "scheme '{}' is a codebook/float format; quantization-aware training trains integer schemes only "
           "(int2..int8)",
           q.weights.to_string());
  q.int8_activations = o.acts == "int8";
  QF_CHECK(o.format == "qforge" || !q.int8_activations,
           "--format {} holds weight-only quantization; --acts int8 needs --format qforge", o.format);
  q.steps = o.steps;
  q.batch = o.batch;
  q.seqlen = o.seqlen;
  q.lr = o.lr;
  q.scale_lr = o.scale_lr;
  q.seed = o.seed;
  q.blockwise = o.blockwise;
  q.e2e_steps = o.e2e_steps;
  q.n_threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  const model::Model m = model::load_model(o.model);
  const tokenizer::Vocab vocab = model::load_vocab(o.model);
  const auto tok = tokenizer::make_tokenizer(vocab);
  const std::vector<int32_t> tokens = algo::read_calibration_tokens(o.calib, *tok);

  const int64_t total = o.blockwise ? o.steps * m.config.n_layers + o.e2e_steps : o.steps;
  ProgressBar bar("train-qat", total);
  const int64_t every = std::max<int64_t>(1, total / 10);
  int64_t done = 0;
  q.progress = [&](const train::QatProgress& p) {
    ++done;
    bar.set_status(fmt::format("{} loss {:.5f}", p.phase, p.loss));
    bar.advance();
    if (!bar.enabled() && (done == 1 || done % every == 0 || done == total))
      fmt::print("train-qat: step {}/{} ({} {}/{}) loss {:.5f}\n", done, total, p.phase, p.step, p.steps,
                 p.loss);
  };
  SigintGuard guard;
  q.stop = &g_interrupted;
  train::QatReport report;
  model::QuantizedModel qm = [&] {
    try {
      return train::train_qat(m, tokens, q, &report);
    } catch (...) {
      bar.finish();
      throw;
    }
  }();
  bar.finish();
  qm.info["calibration"] = {{"tokens", tokens.size()}};
  write_quantized_output(o.format, o.output, qm, vocab, o.model);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  fmt::print("method       qat{}{}\n", o.blockwise ? " (blockwise)" : "", q.int8_activations ? " (activations int8 dynamic-token)" : "");
  double bits = 0, weights = 0;
  for (const auto& l : qm.linears) {
    bits += static_cast<double>(l.weight.storage_bytes()) * 8.0;
    weights += static_cast<double>(l.weight.rows() * l.weight.cols());
  }
  fmt::print("weights      {} over {} layers, {:.4f} bits per weight (scales included)\n", q.weights.to_string(),
             qm.linears.size(), weights > 0 ? bits / weights : 0.0);
  fmt::print("training     {} steps of {} x {} tokens from {} calibration tokens\n", report.steps, q.batch, q.seqlen,
             tokens.size());
  if (!o.blockwise || o.e2e_steps > 0)
    fmt::print("loss         KL {:.5f} -> {:.5f}\n", report.initial_loss, report.final_loss);
  fmt::print("per step     {:.1f} ms, training memory {:.1f} MB\n", 1e3 * report.seconds_per_step,
             static_cast<double>(report.train_bytes) / 1e6);
  fmt::print("output       {}\n", o.output);
  fmt::print("time         {:.2f} s (training {:.2f} s), peak RSS {:.1f} MB\n", seconds, report.seconds,
             static_cast<double>(eval::peak_rss_bytes()) / 1e6);
}

}  // namespace

void register_train_qat(CLI::App& app) {
  auto opt = std::make_shared<TrainQatCliOptions>();
  CLI::App* cmd = app.add_subcommand("train-qat", "Quantization-aware training (LSQ scales, KL to the fp32 model)");
  cmd->add_option("model", opt->model, "float model: Hugging Face folder, safetensors with config.json, llama2.c .bin, GGUF")
      ->required();
  cmd->add_option("-o,--output", opt->output, "output folder (the same layout as quantize writes)")->required();
  cmd->add_option("--format", opt->format, "output layout: " + fmt::format("{}", fmt::join(quantized_output_names(), " | ")))
      ->check(CLI::IsMember(quantized_output_names()));
  cmd->add_option("--weights", opt->weights, "integer weight scheme, e.g. int4:g32, int3:g32:asym, int2:g16:asym");
  cmd->add_option("--acts", opt->acts, "int8: also train with dynamic per-token int8 activations (W8A8 / W4A8)");
  cmd->add_option("--calib", opt->calib, "training text file (UTF-8)")->required();
  cmd->add_option("--steps", opt->steps, "optimizer steps (blockwise: per block)")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--batch", opt->batch, "windows per step")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--seqlen", opt->seqlen, "tokens per window")->check(CLI::Range(2, 1 << 16));
  cmd->add_option("--lr", opt->lr, "Adam learning rate of the latent weights (cosine decay to 0)");
  cmd->add_option("--scale-lr", opt->scale_lr, "learning rate of scales and zero points (default: --lr)");
  cmd->add_option("--seed", opt->seed, "seed for the training windows");
  cmd->add_flag("--blockwise", opt->blockwise, "train block by block on the MSE to the float block outputs (Block-AP)");
  cmd->add_option("--e2e-steps", opt->e2e_steps, "with --blockwise: end-to-end KL steps afterwards")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("-t,--threads", opt->threads, "threads (0 = all cores)")->check(CLI::Range(0, 4096));
  cmd->callback([opt] { run_train_qat(*opt); });
}

}  // namespace qf::cli
