#include "report_command.h"

#include <fmt/format.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "report/collect.h"
#include "report/html.h"

namespace qf::cli {
namespace {

struct ReportCliOptions {
  report::ReportOptions report;
  std::string output;
  std::string json;
};

void run_report(const ReportCliOptions& opt) {
  // The temporary files are created first: an unwritable folder fails at
  // once, not after the forward passes, and nothing is replaced until both
  // are complete.
  AtomicFileWriter html(opt.output);
  std::optional<AtomicFileWriter> json;
  if (!opt.json.empty()) json.emplace(opt.json);
  const nlohmann::ordered_json data = report::collect_report(opt.report);
  const std::string page = report::render_html(data);
  html.write(page);
  if (json) {
    json->write(data.dump(1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    json->write("\n");
    json->commit();
  }
  html.commit();
  fmt::print("report       {} ({:.2f} MB, {} model{} against {}, {} tokens)\n", opt.output,
             static_cast<double>(page.size()) / 1e6, opt.report.compare.size(),
             opt.report.compare.size() == 1 ? "" : "s", opt.report.model, data["text"]["tokens"].get<int64_t>());
  if (!opt.json.empty()) fmt::print("json         {}\n", opt.json);
}

}  // namespace

void register_report(CLI::App& app) {
  auto opt = std::make_shared<ReportCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Write an interactive HTML report comparing quantized models with the fp32 model (one offline file)");
  cmd->add_option("model", opt->report.model, "the fp32 model: Hugging Face folder, safetensors, GGUF or llama2.c .bin")
      ->required();
  cmd->add_option("--compare", opt->report.compare,
                  "quantized folder(s) of that model (qforge, GPTQ, AWQ, compressed-tensors; repeat or comma-separate)")
      ->delimiter(',');
  cmd->add_option("--text", opt->report.text, "UTF-8 text the models are compared on")->required();
  cmd->add_option("-o,--output", opt->output, "the HTML file to write")->required();
  cmd->add_option("--json", opt->json, "also write the report's data (what the page is built from) to this file");
  cmd->add_option("--max-tokens", opt->report.max_tokens, "tokens of the text, BOS included (capped by the context)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  cmd->add_option("--bins", opt->report.bins, "histogram bins")->check(CLI::Range(2, 4096));
  cmd->add_option("--top-k", opt->report.top_k, "candidates shown per token on hover")->check(CLI::Range(1, 100));
  cmd->add_option("--layer-kld-tokens", opt->report.layer_kld_tokens,
                  "tokens for each layer's KLD contribution (one forward pass per layer and model; 0 = skip)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("-t,--threads", opt->report.n_threads, "threads (0 = all cores)")->check(CLI::Range(0, 4096));
  cmd->callback([opt] { run_report(*opt); });
}

}  // namespace qf::cli
