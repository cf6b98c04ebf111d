#include "bench_command.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/bench.h"
#include "kernels/cpu_target.h"
#include "model/linear_layers.h"
#include "model/model.h"
#include "model/packed_weights.h"
#include "model/synthetic.h"
#include "quant/scheme.h"
#include "runtime_flags.h"

namespace qf::cli {
namespace {

struct BenchCliOptions {
  std::string model;
  std::string synthetic;
  std::vector<std::string> types;
  RuntimeFlags runtime;
  bool f32_head = false;
  eval::BenchOptions bench;
  bool json = false;
};

// "f32", or a weight scheme the integer kernels run ("int8", "int4:g128")
// on every matrix of `c` (checked before any type runs).
std::optional<quant::Scheme> parse_type(const std::string& type, const model::ModelConfig& c) {
  if (type == "f32") return std::nullopt;
  quant::Scheme s = quant::Scheme::parse(type);
  std::string why;
  for (const model::LinearLayer& l : model::all_linears(c))
    QF_CHECK(model::kernels_support(s, l.in_features, &why), "--types {}: {} ({}: {} columns)", type, why, l.name,
             l.in_features);
  QF_CHECK(model::kernels_support(s, c.hidden_size, &why), "--types {}: {} (lm_head)", type, why);
  return s;
}

struct TypeResult {
  std::string type;
  eval::BenchResult r;
};

void print_table(const BenchCliOptions& opt, const std::string& name, int64_t params,
                 const std::vector<TypeResult>& results, double triad) {
  fmt::print("model    {} ({:.1f} M parameters), {} thread(s), kernels {}{}\n", name, params / 1e6,
             opt.bench.n_threads, kernels::target_name(*opt.bench.runtime.kernel_target),
             opt.bench.runtime.int8_activations ? ", int8 activations" : "");
  fmt::print("bound    STREAM triad {:.2f} GB/s measured in this run\n\n", triad);
  const TypeResult* f32 = nullptr;
  for (const auto& t : results)
    if (t.type == "f32") f32 = &t;
  fmt::print("| type | weights MB | pp{} tok/s | tg{} tok/s | decode GB/s | of bound | tg vs f32 | peak RSS MB |\n",
             opt.bench.prompt_tokens, opt.bench.gen_tokens);
  fmt::print("|---|---|---|---|---|---|---|---|\n");
  for (const auto& t : results) {
    const std::string vs = f32 ? fmt::format("{:.2f}x", t.r.tg_tokens_per_s / f32->r.tg_tokens_per_s) : "";
    fmt::print("| {} | {:.1f} | {:.1f} | {:.2f} | {:.2f} | {:.0f}% | {} | {:.0f} |\n", t.type, t.r.weight_bytes / 1e6,
               t.r.pp_tokens_per_s, t.r.tg_tokens_per_s, t.r.decode_weight_gbps, 100.0 * t.r.bound_ratio, vs,
               t.r.peak_rss_bytes / 1e6);
  }
}

void run_bench(BenchCliOptions opt) {
  QF_CHECK(opt.model.empty() != opt.synthetic.empty(), "give either a MODEL path or --synthetic NAME");
  apply_runtime_flags(opt.runtime, opt.bench.runtime);
  if (opt.bench.n_threads <= 0) opt.bench.n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  QF_CHECK(!(opt.f32_head && !opt.synthetic.empty()),
           "--f32-head applies to a MODEL; synthetic models quantize their embedding and head tables too");
  // A model given by path is loaded once, before the bound is measured.
  std::optional<model::Model> base;
  if (!opt.types.empty() && opt.synthetic.empty()) base.emplace(model::load_model(opt.model));
  const model::ModelConfig config = base ? base->config : model::ModelConfig{};
  std::vector<std::optional<quant::Scheme>> schemes;
  for (const std::string& t : opt.types)
    schemes.push_back(parse_type(t, base ? config : model::synthetic_config(opt.synthetic)));

  // The bound first, while the process holds no model yet (its buffers are freed again);
  // each type then gets its own peak RSS.
  opt.bench.triad_gbps = eval::triad_bandwidth_gbps(opt.bench.n_threads);
  const std::string name = opt.synthetic.empty() ? opt.model : "synthetic " + opt.synthetic;
  std::vector<TypeResult> results;
  int64_t params = 0;
  if (opt.types.empty()) {
    // The model as stored: quantized folders run on the kernels.
    eval::reset_peak_rss();
    const model::Model m = opt.synthetic.empty()
                               ? model::load_model(opt.model, load_options(opt.runtime))
                               : model::synthetic_model(opt.synthetic, 1, opt.bench.n_threads);
    params = m.parameter_count();
    results.push_back({m.packed_bytes() > 0 ? "as stored" : "f32", eval::run_bench(m, opt.bench)});
  } else if (!opt.synthetic.empty()) {
    // One model per type, generated (and quantized layer by layer) for it alone.
    for (size_t i = 0; i < schemes.size(); ++i) {
      eval::reset_peak_rss();
      const model::Model m =
          model::synthetic_model(opt.synthetic, {.seed = 1, .n_threads = opt.bench.n_threads, .packed_scheme = schemes[i]});
      params = m.parameter_count();
      results.push_back({opt.types[i], eval::run_bench(m, opt.bench)});
    }
  } else {
    params = base->parameter_count();
    for (size_t i = 0; i < schemes.size(); ++i) {
      eval::reset_peak_rss();  // the float model stays resident throughout
      const model::Model m =
          schemes[i] ? model::rtn_packed_model(*base, *schemes[i], !opt.f32_head, opt.bench.n_threads) : *base;
      results.push_back({opt.types[i], eval::run_bench(m, opt.bench)});
    }
  }

  if (opt.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& t : results) {
      const eval::BenchResult& r = t.r;
      rows.push_back({{"type", t.type},
                      {"pp_tokens_per_s", r.pp_tokens_per_s},
                      {"tg_tokens_per_s", r.tg_tokens_per_s},
                      {"weight_bytes", r.weight_bytes},
                      {"decode_bytes_per_token", r.decode_bytes},
                      {"decode_weight_gbps", r.decode_weight_gbps},
                      {"bound_ratio", r.bound_ratio},
                      {"peak_rss_bytes", r.peak_rss_bytes}});
    }
    const nlohmann::json j = {{"model", name},
                              {"parameters", params},
                              {"threads", opt.bench.n_threads},
                              {"kernel_target", kernels::target_name(*opt.bench.runtime.kernel_target)},
                              {"int8_activations", opt.runtime.int8_acts},
                              {"pp_tokens", opt.bench.prompt_tokens},
                              {"tg_tokens", opt.bench.gen_tokens},
                              {"triad_gbps", opt.bench.triad_gbps},
                              {"results", rows}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  print_table(opt, name, params, results, opt.bench.triad_gbps);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto opt = std::make_shared<BenchCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Prompt and decode speed, weight bandwidth and peak memory of a model, per weight type");
  cmd->add_option("model", opt->model,
                  "model: Hugging Face folder, quantized folder, safetensors with config.json, llama2.c .bin, GGUF");
  cmd->add_option("--synthetic", opt->synthetic, "random weights with real shapes: gpt2-124m, llama-1b, llama-7b")
      ->check(CLI::IsMember({"gpt2-124m", "llama-1b", "llama-7b"}));
  cmd->add_option("--types", opt->types,
                  "weight types to compare, RTN-quantized in memory: f32 and integer schemes the kernels run "
                  "(int8, int4:g128, int4:g32:asym, int3:g64, int2:g64:asym ...)")
      ->delimiter(',');
  add_runtime_flags(cmd, opt->runtime);
  cmd->add_flag("--f32-head", opt->f32_head, "keep lm_head in f32 when quantizing a model with --types");
  cmd->add_option("--pp", opt->bench.prompt_tokens, "prompt tokens (pp)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--tg", opt->bench.gen_tokens, "generated tokens (tg)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("-r,--repetitions", opt->bench.repetitions, "best of N")->check(CLI::Range(1, 1000));
  cmd->add_option("-t,--threads", opt->bench.n_threads, "threads (0 = all cores)")->check(CLI::Range(0, 4096));
  cmd->add_flag("--json", opt->json, "machine-readable output");
  cmd->callback([opt] { run_bench(*opt); });
}

}  // namespace qf::cli
