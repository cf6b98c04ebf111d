#include "quantize_command.h"
#include "quantize_gguf.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "algo/calibration.h"
#include "algo/quantize_model.h"
#include "algo/rotation.h"
#include "algo/rotation_learning.h"
#include "calib/observer.h"
#include "core/error.h"
#include "eval/bench.h"
#include "model/model.h"
#include "model/quantized_checkpoint.h"
#include "model/synthetic.h"
#include "quant/scheme.h"
#include "quantized_output.h"
#include "tokenizer/load.h"
#include "tokenizer/tokenizer.h"

namespace qf::cli {
namespace {

struct QuantizeCliOptions {
  std::string model;
  std::string synthetic;
  std::string tokenizer;
  std::string output;
  std::string format = "qforge";
  std::string method = "rtn";
  std::string weights;
  std::string acts;
  std::string act_mode = "dynamic-token";
  std::string observer = "minmax";
  std::string calib;
  int64_t calib_samples = 128;
  int64_t calib_seqlen = 512;
  std::string calib_select = "random";
  uint64_t seed = 0;
  double budget_bpw = 0.0;
  std::vector<std::string> mp_candidates;
  int64_t mp_samples = 8;
  std::string skip;
  double damp = 0.01;
  int64_t block_size = 128;
  bool act_order = false;
  bool bias_correction = false;
  std::string alpha = "0.5";
  int awq_grid = 20;
  bool no_clip = false;
  int threads = 0;
  bool verbose = false;
  std::string rotate = "none";
  std::string rotate_odd = "kronecker";
  int64_t rotate_steps = 0;
  double rotate_lr = 0.05;
  bool act_flags_given = false;  // --act-mode or --observer on the command line
};

// "int8" | "int8:asym" | "int8:tensor": width and symmetry of an activation quantizer.
algo::ActivationOptions parse_acts(const QuantizeCliOptions& o) {
  algo::ActivationOptions a;
  if (o.acts.empty()) return a;
  const quant::Scheme s = quant::Scheme::parse(o.acts);
  QF_CHECK(s.format == quant::Format::Int, "activation scheme '{}' must be an integer format (int2..int8)", o.acts);
  QF_CHECK(s.granularity != quant::Granularity::Group,
           "activation scheme '{}': activations are quantized per token or per tensor (see --act-mode), not in groups",
           o.acts);
  a.enabled = true;
  a.bits = s.bits;
  a.symmetric = s.symmetric;
  a.mode = o.act_mode == "static-tensor" ? model::ActQuantMode::StaticTensor : model::ActQuantMode::DynamicToken;
  a.observer = calib::parse_observer_kind(o.observer);
  return a;
}

void run_quantize(const QuantizeCliOptions& o) {
  using Clock = std::chrono::steady_clock;
  QF_CHECK(o.model.empty() != o.synthetic.empty(), "give either a MODEL path or --synthetic NAME");
  const auto t0 = Clock::now();
  std::optional<algo::RotationOptions> rotation = algo::parse_rotation(o.rotate, o.seed);
  if (rotation) {
    rotation->odd_size = o.rotate_odd == "dense" ? algo::OddSizeRotation::Dense : algo::OddSizeRotation::Kronecker;
    // Checked before any work: only our own folder holds an online transform.
    QF_CHECK(!(rotation->ffn_hidden || rotation->attn_out) || o.format == "qforge",
             "--format {} cannot express the online Hadamard transform of --rotate hadamard; use --format qforge, "
             "or --rotate hadamard-offline",
             o.format);
  }

  algo::QuantizeOptions q;
  q.method = algo::parse_method(o.method);
  const bool gguf = o.format == "gguf";
  const std::string default_weights = q.method == algo::Method::SmoothQuant ? "int8:channel" : "int4:g128";
  q.weights = gguf ? gguf_pipeline_scheme(o.weights.empty() ? "q4_k_m" : o.weights, q.method)
                   : scheme_for_output(o.format, quant::Scheme::parse(o.weights.empty() ? default_weights : o.weights));
  q.acts = parse_acts(o);
  QF_CHECK(!o.act_flags_given || !o.acts.empty() || q.method == algo::Method::SmoothQuant,
           "--act-mode and --observer configure activation quantization: give --acts int8 too");
  if (q.method == algo::Method::SmoothQuant && !q.acts.enabled) {
    q.acts.enabled = true;  // W8A8 is what SmoothQuant is for
    q.acts.mode = o.act_mode == "static-tensor" ? model::ActQuantMode::StaticTensor : model::ActQuantMode::DynamicToken;
    q.acts.observer = calib::parse_observer_kind(o.observer);
  }
  QF_CHECK(o.format == "qforge" || !q.acts.enabled,
           "--format {} holds weight-only quantization; activation quantization (--acts, smoothquant) needs --format "
           "qforge",
           o.format);
  q.gptq.damp = o.damp;
  q.gptq.block_size = o.block_size;
  q.gptq.act_order = o.act_order;
  q.awq.grid = o.awq_grid;
  q.awq.clip = !o.no_clip;
  q.smooth_alphas.clear();
  if (o.alpha == "auto") {
    for (int i = 1; i <= 20; ++i) q.smooth_alphas.push_back(i / 20.0);
  } else {
    try {
      size_t used = 0;
      const double a = std::stod(o.alpha, &used);
      QF_CHECK(used == o.alpha.size() && a >= 0.0 && a <= 1.0, "bad");
      q.smooth_alphas.push_back(a);
    } catch (const std::exception&) {
      fail("--alpha must be a number in [0, 1] or 'auto', got '{}'", o.alpha);
    }
  }
  q.bias_correction = o.bias_correction;
  q.budget_bpw = o.budget_bpw;
  for (const std::string& spec : o.mp_candidates)
    q.mp_candidates.push_back(gguf ? quant::Scheme::parse(spec) : scheme_for_output(o.format, quant::Scheme::parse(spec)));
  q.mp_sequences = o.mp_samples;
  q.skip = o.skip;
  q.n_threads = o.threads;
  q.log = [&](const std::string& line) {
    if (o.verbose) fmt::print(stderr, "qforge quantize: {}\n", line);
  };

  // --rotate-steps is checked before any work too.
  algo::RotationLearningOptions learning;
  if (o.rotate_steps > 0) {
    QF_CHECK(rotation, "--rotate-steps learns on top of a rotation: give --rotate hadamard or hadamard-offline");
    QF_CHECK(!o.calib.empty(), "--rotate-steps needs calibration text: give --calib FILE");
    QF_CHECK(q.budget_bpw <= 0.0, "--rotate-steps learns for one weight scheme; it does not combine with --budget-bpw");
    learning.steps = o.rotate_steps;
    learning.lr = o.rotate_lr;
    learning.weights = q.weights;
    learning.act_quant = q.acts.enabled;
    learning.act_bits = q.acts.bits;
    learning.n_threads = o.threads;
    learning.log = q.log;
    algo::validate(learning);
  }

  model::Model m = o.synthetic.empty() ? model::load_model(o.model)
                                       : model::synthetic_model(o.synthetic, 1, o.threads);
  if (rotation) algo::rotate_model(m, *rotation);
  const std::string source = o.synthetic.empty() ? o.model : o.tokenizer;
  QF_CHECK(o.synthetic.empty() || !o.tokenizer.empty(),
           "--synthetic needs --tokenizer DIR (its vocabulary goes into the output; e.g. the GPT-2 tokenizer folder)");
  const tokenizer::Vocab vocab = o.synthetic.empty() ? model::load_vocab(o.model) : tokenizer::find_tokenizer(o.tokenizer);

  std::vector<calib::TokenSequence> calibration;
  // GGUF output takes calibration text for importance weights even with RTN.
  if (algo::needs_calibration(q) || (gguf && !o.calib.empty()) || o.rotate_steps > 0) {
    QF_CHECK(!o.calib.empty(), "--method {}{} needs calibration text: give --calib FILE", o.method,
             q.method == algo::Method::Rtn ? " with these options" : "");
    const auto tok = tokenizer::make_tokenizer(vocab);
    const std::vector<int32_t> tokens = algo::read_calibration_tokens(o.calib, *tok);
    calibration = with_context(o.calib, [&] {
      return algo::select_calibration(m, tokens, o.calib_samples, o.calib_seqlen,
                                      algo::parse_selection(o.calib_select), o.seed, o.threads);
    });
  }

  algo::RotationLearningReport learned;
  if (o.rotate_steps > 0) algo::refine_rotation(m, algo::learn_rotation(m, calibration, learning, &learned));

  if (gguf) {
    write_quantized_gguf({&m, &vocab, &calibration, q, o.weights.empty() ? "q4_k_m" : o.weights, o.output, o.verbose});
    fmt::print("time         {:.2f} s, peak RSS {:.1f} MB\n", std::chrono::duration<double>(Clock::now() - t0).count(),
               static_cast<double>(eval::peak_rss_bytes()) / 1e6);
    return;
  }
  algo::QuantizeReport report;
  model::QuantizedModel qm = algo::quantize_model(m, calibration, q, &report);
  qm.info["calibration_selection"] = o.calib_select;
  qm.info["seed"] = o.seed;
  if (rotation) qm.info["rotation"] = algo::rotation_info(*rotation);
  if (o.rotate_steps > 0)
    qm.info["rotation"]["learned"] = {{"steps", o.rotate_steps}, {"lr", o.rotate_lr},
                                      {"objective_random", learned.initial_loss},
                                      {"objective_learned", learned.final_loss}};
  write_quantized_output(o.format, o.output, qm, vocab, source);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  const bool mixed = q.budget_bpw > 0.0;
  if (o.verbose || mixed) {
    fmt::print("{:<40} {:<22} {:>8} {:>12}\n", "layer", "scheme", "bpw", mixed ? "sensitivity" : "");
    for (const auto& l : report.layers)
      fmt::print("{:<40} {:<22} {:>8.3f} {:>12}\n", l.name, l.scheme, l.bits_per_weight,
                 l.sensitivity >= 0.0 ? fmt::format("{:.3g}", l.sensitivity) : "");
  }
  if (o.verbose)
    for (const auto& n : report.notes) fmt::print("note: {}\n", n);
  std::uintmax_t bytes = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(o.output, ec))
    if (e.is_regular_file()) bytes += e.file_size();
  fmt::print("method       {}{}\n", o.method, q.acts.enabled ? fmt::format(" (activations int{} {})", q.acts.bits,
                                                                             o.act_mode) : "");
  if (rotation) fmt::print("rotation     {} (seed {})\n", o.rotate, o.seed);
  if (o.rotate_steps > 0)
    fmt::print("learned      {} Cayley steps, objective {:.4f} -> {:.4f} (best at step {}), {:.1f} s\n",
               learned.steps, learned.initial_loss, learned.final_loss, learned.best_step, learned.seconds);
  fmt::print("weights      {} over {} layers, {:.4f} bits per weight (scales included)\n",
             mixed ? fmt::format("mixed, budget {:.3f}", q.budget_bpw) : q.weights.to_string(), report.layers.size(),
             report.bits_per_weight());
  if (!calibration.empty())
    fmt::print("calibration  {} sequences x {} tokens ({})\n", calibration.size(), calibration.front().size(),
               o.calib_select);
  fmt::print("output       {} ({:.2f} MB)\n", o.output, static_cast<double>(bytes) / 1e6);
  fmt::print("time         {:.2f} s, peak RSS {:.1f} MB\n", seconds, static_cast<double>(eval::peak_rss_bytes()) / 1e6);
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto opt = std::make_shared<QuantizeCliOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Quantize a model (RTN, GPTQ, AWQ, SmoothQuant, mixed precision)");
  cmd->add_option("model", opt->model, "model: Hugging Face folder, safetensors with config.json, llama2.c .bin, GGUF");
  cmd->add_option("--synthetic", opt->synthetic, "random weights with real shapes instead of MODEL: gpt2-124m, llama-1b");
  cmd->add_option("--tokenizer", opt->tokenizer, "tokenizer folder for --synthetic (e.g. the GPT-2 encoder.json + vocab.bpe)");
  cmd->add_option("-o,--output", opt->output, "output folder (model.safetensors + config.json + tokenizer)")->required();
  std::vector<std::string> formats = quantized_output_names();
  formats.push_back("gguf");
  cmd->add_option("--format", opt->format,
                  "output layout: " + fmt::format("{}", fmt::join(formats, " | ")) +
                      " (default qforge); gguf: OUT.gguf with a llama.cpp mixture (--weights q4_k_m | q5_k_m | "
                      "q3_k_m | q2_k | q6_k | q8_0 | q4_0 | q4_1 | q5_0 | q5_1 ...)")
      ->check(CLI::IsMember(formats));
  cmd->add_option("--method", opt->method, "rtn | gptq | awq | smoothquant")
      ->check(CLI::IsMember({"rtn", "gptq", "awq", "smoothquant"}));
  cmd->add_option("--weights", opt->weights,
                  "weight scheme, e.g. int4:g128, int3:g32:asym, int8:channel (default int4:g128; smoothquant int8:channel)");
  cmd->add_option("--acts", opt->acts, "quantize linear-layer inputs too: int8 | int4 (symmetric; int2..int8) or int8:asym (static only)");
  CLI::Option* act_mode = cmd->add_option("--act-mode", opt->act_mode, "dynamic-token: a scale per token at run time; static-tensor: calibrated")
      ->check(CLI::IsMember({"dynamic-token", "static-tensor"}));
  CLI::Option* observer = cmd->add_option("--observer", opt->observer, "static activation ranges: minmax | ema | percentile | kl | mse")
      ->check(CLI::IsMember({"minmax", "ema", "moving_average", "percentile", "kl", "entropy", "mse"}));
  cmd->add_option("--calib", opt->calib, "calibration text file (UTF-8)");
  cmd->add_option("--calib-samples", opt->calib_samples, "calibration sequences")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--calib-seqlen", opt->calib_seqlen, "tokens per calibration sequence")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--calib-select", opt->calib_select, "random | diverse (k-means over mean hidden states)")
      ->check(CLI::IsMember({"random", "diverse"}));
  cmd->add_option("--seed", opt->seed, "seed for the calibration sample and the --rotate signs and matrices");
  cmd->add_option("--budget-bpw", opt->budget_bpw, "mixed precision: average bits per weight (scales included)")
      ->check(CLI::Range(0.5, 64.0));
  cmd->add_option("--mp-candidates", opt->mp_candidates,
                  "mixed precision schemes to choose from (default: int2 g32/g16 asym, int3 g64/g32/g32 asym, "
                  "int4 g64/g32, int8 g32, fp16 scales; comma-separated or repeated)")
      ->delimiter(',');
  cmd->add_option("--mp-samples", opt->mp_samples, "mixed precision: calibration sequences the sensitivity is measured on")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--skip", opt->skip, "regular expression: matching layers (HF module names) stay in float");
  cmd->add_option("--damp", opt->damp, "GPTQ: damping as a fraction of the mean Hessian diagonal")
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--block-size", opt->block_size, "GPTQ: lazy batch width")->check(CLI::Range(1, 1 << 16));
  cmd->add_flag("--act-order", opt->act_order, "GPTQ: quantize columns by decreasing Hessian diagonal (static groups)");
  cmd->add_flag("--bias-correction", opt->bias_correction, "add (W - Wq) E[x] to each layer's bias");
  cmd->add_option("--alpha", opt->alpha,
                  "SmoothQuant migration strength in [0, 1] (default 0.5), or 'auto': searched per site");
  cmd->add_option("--awq-grid", opt->awq_grid, "AWQ: alpha grid points")->check(CLI::Range(1, 1000));
  cmd->add_flag("--no-clip", opt->no_clip, "AWQ: skip the weight clipping search");
  cmd->add_option("--rotate", opt->rotate,
                  "rotate first (QuaRot-style, the float model unchanged): none | hadamard (residual stream, attention "
                  "heads, online Hadamard before down_proj; --format qforge) | hadamard-offline (no online transform)")
      ->check(CLI::IsMember({"none", "hadamard", "hadamard-offline"}));
  cmd->add_option("--rotate-odd", opt->rotate_odd,
                  "--rotate, widths that are not powers of two: kronecker (random orthogonal (x) Hadamard, default) | "
                  "dense (one random orthogonal matrix)")
      ->check(CLI::IsMember({"kronecker", "dense"}));
  cmd->add_option("--rotate-steps", opt->rotate_steps,
                  "--rotate: learn the rotation for N Cayley steps on the calibration set (SpinQuant-style, a "
                  "layer-local quantization-error objective; 0 = the random rotation as drawn)")
      ->check(CLI::Range(int64_t{0}, int64_t{100000}));
  cmd->add_option("--rotate-lr", opt->rotate_lr, "--rotate-steps: step length per Cayley step (cosine-decayed)")
      ->check(CLI::Range(1e-6, 10.0));
  cmd->add_option("-t,--threads", opt->threads, "threads (0 = all cores)")->check(CLI::Range(0, 4096));
  cmd->add_flag("-v,--verbose", opt->verbose, "per-layer table, search notes and progress");
  cmd->callback([opt, act_mode, observer] {
    opt->act_flags_given = act_mode->count() > 0 || observer->count() > 0;
    run_quantize(*opt);
  });
}

}  // namespace qf::cli
