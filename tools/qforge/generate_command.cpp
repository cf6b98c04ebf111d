#include "generate_command.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/runtime.h"
#include "runtime_flags.h"
#include "runtime/sampler.h"
#include "tokenizer/load.h"
#include "tokenizer/tokenizer.h"

namespace qf::cli {
namespace {

struct GenerateOptions {
  RuntimeFlags runtime;
  std::string model;
  std::string prompt;
  int64_t n_tokens = 128;
  runtime::SamplerConfig sampler;
  int64_t ctx = 0;
  int threads = 0;
  bool stop_at_eos = true;
  bool stats = false;
};

void run_generate(const GenerateOptions& opt) {
  runtime::RuntimeOptions flags;  // a bad --target is reported before a long load
  apply_runtime_flags(opt.runtime, flags);
  const model::Model model = model::load_model(opt.model, load_options(opt.runtime));
  const auto tok = tokenizer::make_tokenizer(model::load_vocab(opt.model));
  std::vector<int32_t> prompt = tok->encode(opt.prompt, /*add_bos=*/tok->vocab().add_bos);
  QF_CHECK(!prompt.empty(), "the prompt is empty and the tokenizer has no BOS token to start from");

  runtime::RuntimeOptions ropt = flags;
  ropt.n_threads = opt.threads;
  ropt.context = opt.ctx;
  runtime::Runtime rt(model, ropt);
  runtime::Sampler sampler(opt.sampler);

  std::fputs(opt.prompt.c_str(), stdout);
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  // The first piece after a bare BOS carries SentencePiece's dummy-prefix space;
  // drop it so the text starts where the model's does (as llama2.c prints it).
  bool at_text_start = opt.prompt.empty();
  const auto tokens = runtime::generate(rt, prompt, opt.n_tokens, sampler, [&](int32_t t) {
    if (opt.stop_at_eos && t == tok->eos_id()) return false;
    std::string piece = tok->token_to_piece(t);
    if (at_text_start && tok->vocab().kind == tokenizer::VocabKind::SentencePiece && tok->vocab().add_space_prefix &&
        piece.starts_with(' ')) piece.erase(0, 1);
    at_text_start = false;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (opt.stats) {
    fmt::print(stderr, "{} prompt tokens, {} generated in {:.3f} s ({:.1f} tokens/s)\n", prompt.size(), tokens.size(),
               secs, static_cast<double>(tokens.size()) / std::max(secs, 1e-9));
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto opt = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  cmd->add_option("model", opt->model, "model: Hugging Face folder, safetensors with config.json, llama2.c .bin")
      ->required();
  cmd->add_option("-p,--prompt", opt->prompt, "prompt text (default: start from BOS)");
  cmd->add_option("-n,--tokens", opt->n_tokens, "tokens to generate")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--temp", opt->sampler.temperature, "temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", opt->sampler.top_k, "keep the k most likely tokens (0 = all)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", opt->sampler.top_p, "nucleus sampling mass (1 = off)")->check(CLI::Range(1e-6, 1.0));
  cmd->add_option("--seed", opt->sampler.seed, "random seed");
  cmd->add_option("--ctx", opt->ctx, "context length (0 = the model's)")->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("-t,--threads", opt->threads, "threads (0 = all cores)")->check(CLI::Range(0, 4096));
  add_runtime_flags(cmd, opt->runtime);
  cmd->add_flag("!--no-stop", opt->stop_at_eos, "keep going past the end-of-sequence token");
  cmd->add_flag("--stats", opt->stats, "print timing to stderr");
  cmd->callback([opt] { run_generate(*opt); });
}

}  // namespace qf::cli
