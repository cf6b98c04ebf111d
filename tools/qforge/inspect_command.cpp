#include "inspect_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "algo/activation_outliers.h"
#include "algo/calibration.h"
#include "algo/rotation.h"
#include "analysis/scheme_error.h"
#include "analysis/tensor_stats.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "formats/checkpoint.h"
#include "formats/strict_json.h"
#include "model/linear_layers.h"
#include "model/model.h"
#include "quant/scheme.h"
#include "tokenizer/tokenizer.h"

namespace qf::cli {
namespace {

struct InspectOptions {
  std::string path;
  std::vector<std::string> schemes;
  bool json = false;
  bool brief = false;
  int threads = 0;
  std::string calib;
  int64_t calib_samples = 16;
  int64_t calib_seqlen = 256;
  uint64_t seed = 0;
  std::string rotate = "none";
};

struct TensorReport {
  analysis::TensorStats stats;
  // A matrix holding NaN/Inf cannot be quantized: the schemes are not
  // evaluated on it, and it is left out of the scheme summaries.
  bool not_evaluated = false;
  std::vector<analysis::TensorQuantError> errors;  // one per scheme (empty when not evaluated)
};

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.2f} {}", b, units[u]);
}

// JSON has no Inf: an exact reconstruction reports SQNR as null.
nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string db(double v) { return std::isfinite(v) ? fmt::format("{:.2f}", v) : "exact"; }

// a / b, or nullopt when it is undefined (an empty checkpoint, a zero-size tensor).
std::optional<double> ratio(double a, double b) {
  if (b == 0.0) return std::nullopt;
  return a / b;
}
std::string fixed(std::optional<double> v, int precision) {
  return v ? fmt::format("{:.{}f}", *v, precision) : std::string("-");
}
nlohmann::json json_or_null(std::optional<double> v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

std::string not_evaluated_note(uint64_t non_finite) { return fmt::format("not evaluated ({} NaN/Inf)", non_finite); }

// summaries[0]: every tensor as stored (the header line); summaries[1]: the
// evaluated tensors as stored (the summary's baseline); summaries[2 + k]: scheme k.
void print_text(const formats::Checkpoint& ckpt, const std::vector<quant::Scheme>& schemes,
                const std::vector<TensorReport>& reports, const std::vector<analysis::SchemeSummary>& summaries,
                bool brief) {
  const auto& base = summaries.front();
  fmt::print("{}: {} checkpoint, {} tensors, {} parameters, {}\n", ckpt.path, ckpt.format, ckpt.tensors.size(),
             base.params, human_bytes(static_cast<double>(base.original_bytes)));
  if (!brief) {
    fmt::print("\n{:<48} {:>5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>9} {:>7} {:>6}\n", "tensor", "dtype", "shape",
               "bytes", "min", "max", "mean", "std", "kurt", ">6sd");
    for (size_t i = 0; i < ckpt.tensors.size(); ++i) {
      const auto& t = ckpt.tensors[i].tensor;
      const auto& s = reports[i].stats;
      fmt::print("{:<48} {:>5} {:>12} {:>10} {:>10.4g} {:>10.4g} {:>10.3g} {:>9.4g} {:>7.2f} {:>6}{}\n",
                 ckpt.tensors[i].name, dtype_name(t.dtype()), shape_to_string(t.shape()), t.nbytes(), s.min, s.max,
                 s.mean, s.std, s.kurtosis, s.outliers,
                 s.non_finite ? fmt::format("  ({} NaN/Inf)", s.non_finite) : std::string());
    }
    for (size_t k = 0; k < schemes.size(); ++k) {
      fmt::print("\nscheme {} (round to nearest; vectors kept as stored)\n", schemes[k].to_string());
      fmt::print("{:<48} {:>10} {:>6} {:>9} {:>11} {:>10} {:>9}\n", "tensor", "bytes", "bpw", "SQNR dB", "MSE",
                 "max|err|", "cosine");
      for (size_t i = 0; i < ckpt.tensors.size(); ++i) {
        if (reports[i].not_evaluated) {
          fmt::print("{:<48} {}\n", ckpt.tensors[i].name, not_evaluated_note(reports[i].stats.non_finite));
          continue;
        }
        const auto& e = reports[i].errors[k];
        if (!e.quantized) continue;
        fmt::print("{:<48} {:>10} {:>6} {:>9} {:>11.4e} {:>10.4g} {:>9.6f}\n", ckpt.tensors[i].name,
                   e.quantized_bytes,
                   fixed(ratio(8.0 * static_cast<double>(e.quantized_bytes), static_cast<double>(e.numel)), 3),
                   db(e.metrics.sqnr_db), e.metrics.mse, e.metrics.max_abs, e.metrics.cosine);
      }
    }
    fmt::print("\n");
  }
  if (schemes.empty()) return;
  const auto& evaluated = summaries[1];
  fmt::print("{:<24} {:>8} {:>12} {:>7} {:>9} {:>11} {:>11}\n", "scheme", "bits/w", "size", "ratio", "SQNR dB",
             "MSE", "worst dB");
  fmt::print("{:<24} {:>8} {:>12} {:>7} {:>9} {:>11} {:>11}\n", "(as stored)",
             fixed(ratio(8.0 * static_cast<double>(evaluated.original_bytes), static_cast<double>(evaluated.params)), 3),
             human_bytes(static_cast<double>(evaluated.original_bytes)),
             fixed(ratio(static_cast<double>(evaluated.original_bytes), static_cast<double>(evaluated.original_bytes)), 2),
             "-", "-", "-");
  for (size_t k = 0; k < schemes.size(); ++k) {
    const auto& s = summaries[k + 2];
    fmt::print("{:<24} {:>8} {:>12} {:>7} {:>9} {:>11.4e} {:>11}\n", schemes[k].to_string(),
               fixed(ratio(8.0 * static_cast<double>(s.quantized_bytes), static_cast<double>(s.params)), 3),
               human_bytes(static_cast<double>(s.quantized_bytes)),
               fixed(ratio(static_cast<double>(s.original_bytes), static_cast<double>(s.quantized_bytes)), 2),
               db(s.sqnr_db), s.mse, db(s.worst_sqnr_db));
  }
  size_t skipped = 0;
  for (const auto& r : reports) skipped += r.not_evaluated ? 1 : 0;
  if (skipped) {
    fmt::print("note: {} tensor{} with NaN/Inf values {} not evaluated and {} left out of this summary\n", skipped,
               skipped == 1 ? "" : "s", skipped == 1 ? "was" : "were", skipped == 1 ? "is" : "are");
  }
}

void print_json(const formats::Checkpoint& ckpt, const std::vector<quant::Scheme>& schemes,
                const std::vector<TensorReport>& reports, const std::vector<analysis::SchemeSummary>& summaries) {
  using nlohmann::json;
  json out;
  out["path"] = ckpt.path;
  out["format"] = ckpt.format;
  out["metadata"] = ckpt.metadata;
  out["params"] = summaries.front().params;
  out["bytes"] = summaries.front().original_bytes;
  json tensors = json::array();
  for (size_t i = 0; i < ckpt.tensors.size(); ++i) {
    const auto& t = ckpt.tensors[i].tensor;
    const auto& s = reports[i].stats;
    json jt = {{"name", ckpt.tensors[i].name},
               {"dtype", dtype_name(t.dtype())},
               {"shape", t.shape()},
               {"bytes", t.nbytes()},
               {"stats",
                {{"min", s.min},
                 {"max", s.max},
                 {"mean", s.mean},
                 {"std", s.std},
                 {"kurtosis", s.kurtosis},
                 {"outliers_6sd", s.outliers},
                 {"non_finite", s.non_finite}}}};
    json js = json::object();
    for (size_t k = 0; k < schemes.size(); ++k) {
      if (reports[i].not_evaluated) {
        js[schemes[k].to_string()] = {{"evaluated", false}, {"reason", not_evaluated_note(s.non_finite)}};
        continue;
      }
      const auto& e = reports[i].errors[k];
      if (!e.quantized) continue;
      js[schemes[k].to_string()] = {{"bytes", e.quantized_bytes},
                                    {"sqnr_db", finite_or_null(e.metrics.sqnr_db)},
                                    {"mse", e.metrics.mse},
                                    {"max_abs_error", e.metrics.max_abs},
                                    {"cosine", e.metrics.cosine}};
    }
    if (!schemes.empty()) jt["schemes"] = js;
    tensors.push_back(std::move(jt));
  }
  out["tensors"] = std::move(tensors);
  json js = json::array();
  for (size_t k = 0; k < schemes.size(); ++k) {
    const auto& s = summaries[k + 2];
    js.push_back({{"scheme", schemes[k].to_string()},
                  {"bytes", s.quantized_bytes},
                  {"bits_per_weight",
                   json_or_null(ratio(8.0 * static_cast<double>(s.quantized_bytes), static_cast<double>(s.params)))},
                  {"sqnr_db", finite_or_null(s.sqnr_db)},
                  {"mse", s.mse},
                  {"worst_sqnr_db", finite_or_null(s.worst_sqnr_db)}});
  }
  out["schemes"] = std::move(js);
  json excluded = json::array();
  for (size_t i = 0; i < ckpt.tensors.size(); ++i) {
    if (reports[i].not_evaluated) excluded.push_back(ckpt.tensors[i].name);
  }
  out["not_evaluated"] = std::move(excluded);  // tensors left out of the scheme summaries (NaN/Inf)
  // Names and paths need not be UTF-8: replace bad bytes instead of throwing.
  fmt::print("{}\n", out.dump(2, ' ', false, json::error_handler_t::replace));
}

// qforge inspect MODEL --calib FILE: activation outliers per block and site.
void run_activation_report(const InspectOptions& opt) {
  model::Model m = model::load_model(opt.path);
  // What a rotated model's layers would see (a folder quantized with
  // --rotate already carries its rotation).
  if (const auto rotation = algo::parse_rotation(opt.rotate, opt.seed)) algo::rotate_model(m, *rotation);
  const auto tok = tokenizer::make_tokenizer(model::load_vocab(opt.path));
  const std::vector<int32_t> tokens = algo::read_calibration_tokens(opt.calib, *tok);
  const auto seqs = with_context(opt.calib, [&] {
    return algo::select_calibration(m, tokens, opt.calib_samples, opt.calib_seqlen, algo::Selection::Random, opt.seed,
                                    opt.threads);
  });
  const auto reports = algo::activation_outliers(m, seqs, opt.threads);
  if (opt.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& r : reports) {
      const auto& s = r.stats;
      out.push_back({{"block", r.layer},
                     {"site", model::input_site_name(r.site)},
                     {"channels", s.channels},
                     {"tokens", s.tokens},
                     {"kurtosis", s.kurtosis},
                     {"absmax", s.absmax},
                     {"max_median_ratio", s.max_median_ratio},
                     {"outlier_values", s.outlier_values},
                     {"outlier_channels", s.outlier_channels}});
    }
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("activation outliers of {} on {} sequences x {} tokens of {}\n", opt.path, seqs.size(),
             seqs.front().size(), opt.calib);
  fmt::print("{:>5} {:<10} {:>8} {:>9} {:>9} {:>10} {:>9} {:>9}  {}\n", "block", "site", "channels", "kurtosis",
             "absmax", "max/median", ">6sigma", "channels", "largest outlier channels");
  for (const auto& r : reports) {
    const auto& s = r.stats;
    std::string top;
    for (size_t i = 0; i < s.outlier_channels.size() && i < 6; ++i)
      top += fmt::format("{}{}", i ? "," : "", s.outlier_channels[i]);
    fmt::print("{:>5} {:<10} {:>8} {:>9.2f} {:>9.3f} {:>10.2f} {:>9} {:>9}  {}\n", r.layer,
               model::input_site_name(r.site), s.channels, s.kurtosis, s.absmax, s.max_median_ratio,
               s.outlier_values, s.outlier_channels.size(), top);
  }
}

void run_inspect(const InspectOptions& opt) {
  QF_CHECK(opt.rotate == "none" || !opt.calib.empty(), "--rotate applies to the activation report: give --calib FILE");
  if (!opt.calib.empty()) return run_activation_report(opt);
  std::vector<quant::Scheme> schemes;
  for (const auto& spec : opt.schemes) schemes.push_back(quant::Scheme::parse(spec));
  const formats::Checkpoint ckpt = formats::open_checkpoint(opt.path);

  // Tensors are independent: spread them over the threads; each thread holds
  // at most one tensor's fp32 copy and its reconstruction at a time.
  std::vector<TensorReport> reports(ckpt.tensors.size());
  ThreadPool pool(opt.threads);
  ProgressBar progress("inspect", static_cast<int64_t>(ckpt.tensors.size()));
  pool.parallel_for(static_cast<int64_t>(ckpt.tensors.size()), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto& named = ckpt.tensors[static_cast<size_t>(i)];
      with_context(ckpt.path + ": tensor " + formats::quote(named.name), [&] {
        const Tensor& t = named.tensor;
        auto& r = reports[static_cast<size_t>(i)];
        if (t.dtype() == DType::Bool || t.numel() == 0) {
          r.stats.count = t.numel();
        } else {
          const auto values = t.to_f32_vector();
          r.stats = analysis::compute_stats(values);
        }
        // The stats count NaN/Inf on purpose; quantizing such a matrix would
        // throw, so it is reported as not evaluated instead of failing the run.
        if (r.stats.non_finite > 0 && analysis::is_quantizable(t)) {
          r.not_evaluated = true;
          return;
        }
        for (const auto& scheme : schemes) r.errors.push_back(analysis::evaluate_scheme(t, scheme));
      });
      progress.advance();
    }
  });
  progress.finish();

  std::vector<analysis::SchemeSummary> summaries;
  for (const bool evaluated_only : {false, true}) {
    std::vector<analysis::TensorQuantError> stored;
    for (size_t i = 0; i < ckpt.tensors.size(); ++i) {
      if (evaluated_only && reports[i].not_evaluated) continue;
      const Tensor& t = ckpt.tensors[i].tensor;
      stored.push_back({false, t.numel(), t.nbytes(), t.nbytes(), 0, 0, {}});
    }
    summaries.push_back(analysis::summarize(stored));
  }
  for (size_t k = 0; k < schemes.size(); ++k) {
    std::vector<analysis::TensorQuantError> per_tensor;
    for (const auto& r : reports) {
      if (!r.not_evaluated) per_tensor.push_back(r.errors[k]);
    }
    summaries.push_back(analysis::summarize(per_tensor));
  }
  if (opt.json) {
    print_json(ckpt, schemes, reports, summaries);
  } else {
    print_text(ckpt, schemes, reports, summaries, opt.brief);
  }
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto opt = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "List a checkpoint's tensors with distribution statistics, and what quantization schemes would cost");
  cmd->add_option("file", opt->path,
                  "safetensors file, sharded index (model.safetensors.index.json), model folder, GGUF file, or llama2.c .bin")
      ->required();
  cmd->add_option("-s,--scheme", opt->schemes,
                   "quantization scheme(s) to evaluate with round-to-nearest, e.g. int8:channel, int4:g128:asym, "
                   "nf4:g64, fp8e4m3 (comma-separated or repeated)")
      ->delimiter(',');
  cmd->add_flag("--json", opt->json, "machine-readable output");
  cmd->add_flag("--brief", opt->brief, "only the per-scheme summary table");
  cmd->add_option("-t,--threads", opt->threads, "worker threads (0 = all cores)")->check(CLI::Range(0, 4096));
  cmd->add_option("--calib", opt->calib,
                  "instead: run the model on this text and report activation outliers per block and input site "
                  "(channels beyond 6 sigma, kurtosis, max/median channel ratio)");
  cmd->add_option("--calib-samples", opt->calib_samples, "--calib: sequences")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--calib-seqlen", opt->calib_seqlen, "--calib: tokens per sequence")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--seed", opt->seed, "--calib: seed of the sample (and of --rotate)");
  cmd->add_option("--rotate", opt->rotate, "--calib: rotate the model first (none | hadamard | hadamard-offline, as quantize)")
      ->check(CLI::IsMember({"none", "hadamard", "hadamard-offline"}));
  cmd->callback([opt] { run_inspect(*opt); });
}

}  // namespace qf::cli
