#include "bench_command.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>

#include "core/error.h"
#include "eval/bench.h"
#include "model/model.h"
#include "model/synthetic.h"

namespace qf::cli {
namespace {

struct BenchCliOptions {
  std::string model;
  std::string synthetic;
  eval::BenchOptions bench;
  bool json = false;
};

void run_bench(const BenchCliOptions& opt) {
  QF_CHECK(opt.model.empty() != opt.synthetic.empty(), "give either a MODEL path or --synthetic NAME");
  const model::Model m = opt.synthetic.empty() ? model::load_model(opt.model)
                                               : model::synthetic_model(opt.synthetic, 1, opt.bench.n_threads);
  const eval::BenchResult r = eval::run_bench(m, opt.bench);
  const std::string name = opt.synthetic.empty() ? opt.model : "synthetic " + opt.synthetic;
  if (opt.json) {
    const nlohmann::json j = {{"model", name},
                              {"type", "f32"},
                              {"threads", opt.bench.n_threads},
                              {"pp_tokens", opt.bench.prompt_tokens},
                              {"pp_tokens_per_s", r.pp_tokens_per_s},
                              {"tg_tokens", opt.bench.gen_tokens},
                              {"tg_tokens_per_s", r.tg_tokens_per_s},
                              {"weight_bytes", r.weight_bytes},
                              {"decode_bytes_per_token", r.decode_bytes},
                              {"decode_weight_gbps", r.decode_weight_gbps},
                              {"triad_gbps", r.triad_gbps},
                              {"bound_ratio", r.bound_ratio},
                              {"peak_rss_bytes", r.peak_rss_bytes}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("model          {} ({} parameters, fp32)\n", name, m.parameter_count());
  fmt::print("weights        {:.1f} MB ({:.1f} MB read per decode token)\n", r.weight_bytes / 1e6, r.decode_bytes / 1e6);
  fmt::print("pp{:<4}         {:.1f} tokens/s\n", opt.bench.prompt_tokens, r.pp_tokens_per_s);
  fmt::print("tg{:<4}         {:.1f} tokens/s\n", opt.bench.gen_tokens, r.tg_tokens_per_s);
  fmt::print("decode weights {:.2f} GB/s = {:.0f}% of the triad bandwidth {:.2f} GB/s measured in this run\n",
             r.decode_weight_gbps, 100.0 * r.bound_ratio, r.triad_gbps);
  fmt::print("peak RSS       {:.1f} MB\n", r.peak_rss_bytes / 1e6);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto opt = std::make_shared<BenchCliOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Prompt and decode speed, weight bandwidth and peak memory of a model");
  cmd->add_option("model", opt->model, "model: Hugging Face folder, safetensors with config.json, llama2.c .bin");
  cmd->add_option("--synthetic", opt->synthetic, "random weights with real shapes: gpt2-124m, llama-1b, llama-7b")
      ->check(CLI::IsMember({"gpt2-124m", "llama-1b", "llama-7b"}));
  cmd->add_option("--pp", opt->bench.prompt_tokens, "prompt tokens (pp)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--tg", opt->bench.gen_tokens, "generated tokens (tg)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("-r,--repetitions", opt->bench.repetitions, "best of N")->check(CLI::Range(1, 1000));
  cmd->add_option("-t,--threads", opt->bench.n_threads, "threads (0 = all cores)")->check(CLI::Range(0, 4096));
  cmd->add_flag("--json", opt->json, "machine-readable output");
  cmd->callback([opt] { run_bench(*opt); });
}

}  // namespace qf::cli
