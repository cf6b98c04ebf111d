#include "eval_command.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "core/error.h"
#include "eval/evaluate.h"
#include "eval/protocol.h"
#include "model/model.h"
#include "runtime/runtime.h"
#include "runtime_flags.h"
#include "tokenizer/load.h"
#include "tokenizer/tokenizer.h"

namespace qf::cli {
namespace {

struct EvalCliOptions {
  RuntimeFlags runtime;
  std::string model;
  std::string text;
  std::string baseline;
  std::string protocol = "chunks";
  int64_t ctx = 512;
  int64_t stride = 0;
  int64_t max_windows = 0;
  int64_t batch = 512;
  int threads = 0;
  bool json = false;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  QF_CHECK(in.good(), "{}: cannot open the evaluation text", path);
  std::stringstream ss;
  ss << in.rdbuf();
  QF_CHECK(!in.bad(), "{}: read error", path);
  return ss.str();
}

void run_eval(const EvalCliOptions& opt) {
  eval::ProtocolOptions popt;
  popt.protocol = eval::parse_protocol(opt.protocol);
  popt.n_ctx = opt.ctx;
  popt.stride = opt.stride;
  popt.max_windows = opt.max_windows;

  const std::string text = read_text(opt.text);
  runtime::RuntimeOptions flags;  // a bad --target is reported before a long load
  apply_runtime_flags(opt.runtime, flags);
  const model::Model model = model::load_model(opt.model, load_options(opt.runtime));
  const auto tok = tokenizer::make_tokenizer(model::load_vocab(opt.model));
  QF_CHECK(tok->vocab_size() <= model.config.vocab_size, "{}: the tokenizer has {} tokens but the model only {}",
           opt.model, tok->vocab_size(), model.config.vocab_size);
  const std::vector<eval::Window> windows = with_context(opt.text, [&] { return eval::make_windows(*tok, text, popt); });
  size_t longest = 0;
  for (const auto& w : windows) longest = std::max(longest, w.tokens.size());

  runtime::RuntimeOptions ropt = flags;
  ropt.n_threads = opt.threads;
  ropt.context = static_cast<int64_t>(longest);
  runtime::Runtime rt(model, ropt);
  std::optional<model::Model> base_model;
  std::optional<runtime::Runtime> base_rt;
  if (!opt.baseline.empty()) {
    base_model.emplace(model::load_model(opt.baseline, load_options(opt.runtime)));
    base_rt.emplace(*base_model, ropt);
  }
  eval::EvalOptions eopt;
  eopt.batch = opt.batch;
  const eval::EvalResult r = eval::evaluate(rt, base_rt ? &*base_rt : nullptr, windows, eopt);

  if (opt.json) {
    nlohmann::json j = {{"model", opt.model},
                        {"text", opt.text},
                        {"protocol", eval::protocol_name(popt.protocol)},
                        {"ctx", popt.n_ctx},
                        {"windows", r.windows},
                        {"tokens", r.tokens},
                        {"nll_mean", r.nll_sum / static_cast<double>(r.tokens)},
                        {"perplexity", r.perplexity()},
                        {"seconds", r.seconds}};
    if (popt.protocol == eval::Protocol::Strided) j["stride"] = popt.stride > 0 ? popt.stride : popt.n_ctx / 2;
    if (r.has_baseline) {
      j["baseline"] = {{"model", opt.baseline},
                       {"perplexity", r.baseline_perplexity()},
                       {"ppl_ratio", r.ppl_ratio()},
                       {"kld_mean", r.kl_mean()},
                       {"kld_p99", r.kl_quantile(0.99)},
                       {"kld_max", r.kl_max()},
                       {"top1_agreement", r.top1_agreement()},
                       {"rms_dp", r.rms_dp()}};
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("model        {}\n", opt.model);
  fmt::print("text         {} ({} protocol, {} windows, {} scored tokens)\n", opt.text,
             eval::protocol_name(popt.protocol), r.windows, r.tokens);
  fmt::print("perplexity   {:.4f}\n", r.perplexity());
  if (r.has_baseline) {
    fmt::print("baseline     {} (perplexity {:.4f})\n", opt.baseline, r.baseline_perplexity());
    fmt::print("PPL ratio    {:.5f}\n", r.ppl_ratio());
    fmt::print("KLD          mean {:.6f}  p99 {:.6f}  max {:.6f}\n", r.kl_mean(), r.kl_quantile(0.99), r.kl_max());
    fmt::print("top-1 agree  {:.3f} %\n", 100.0 * r.top1_agreement());
    fmt::print("RMS dp       {:.4f} %\n", 100.0 * r.rms_dp());
  }
  fmt::print("time         {:.2f} s ({:.0f} tokens/s)\n", r.seconds,
             static_cast<double>(r.tokens) * (r.has_baseline ? 2.0 : 1.0) / std::max(r.seconds, 1e-9));
}

}  // namespace

void register_eval(CLI::App& app) {
  auto opt = std::make_shared<EvalCliOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Perplexity of a model on a text, and its divergence from a baseline");
  cmd->add_option("model", opt->model, "model: Hugging Face folder, safetensors with config.json, llama2.c .bin")
      ->required();
  cmd->add_option("--text", opt->text, "evaluation text file (UTF-8)")->required();
  cmd->add_option("--protocol", opt->protocol,
                  "chunks: llama.cpp windows, second half scored; strided: Hugging Face sliding window; "
                  "lines: each non-empty line from BOS")
      ->check(CLI::IsMember({"chunks", "strided", "lines"}));
  cmd->add_option("--ctx", opt->ctx, "window length in tokens (chunks, strided)")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--stride", opt->stride, "strided: tokens between window starts (default ctx/2)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-windows", opt->max_windows, "stop after this many windows or lines (0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--baseline", opt->baseline,
                  "full-precision model to compare against: KL divergence, top-1 agreement, RMS dp, PPL ratio");
  cmd->add_option("--batch", opt->batch, "tokens per forward pass")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("-t,--threads", opt->threads, "threads (0 = all cores)")->check(CLI::Range(0, 4096));
  add_runtime_flags(cmd, opt->runtime);
  cmd->add_flag("--json", opt->json, "machine-readable output");
  cmd->callback([opt] { run_eval(*opt); });
}

}  // namespace qf::cli
