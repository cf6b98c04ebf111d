// qforge: the command-line face of the QuantForge library. Each subcommand
// lives in its own file and only parses flags and calls the library; every
// failure becomes one line on stderr and a non-zero exit.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include "core/error.h"
#include "bench_command.h"
#include "convert_command.h"
#include "eval_command.h"
#include "generate_command.h"
#include "inspect_command.h"
#include "quantize_command.h"
#include "report_command.h"
#include "serve_command.h"
#include "train_qat_command.h"

int main(int argc, char** argv) {
  CLI::App app{"QuantForge: quantize transformer language models and measure what it costs"};
  app.set_version_flag("--version", std::string("qforge ") + QF_VERSION);
  app.require_subcommand(1);
  qf::cli::register_inspect(app);
  qf::cli::register_eval(app);
  qf::cli::register_generate(app);
  qf::cli::register_bench(app);
  qf::cli::register_convert(app);
  qf::cli::register_quantize(app);
  qf::cli::register_report(app);
  qf::cli::register_serve(app);
  qf::cli::register_train_qat(app);
  try {
    if (argc > 1 && argv[1][0] != '-') {
      // CLI11 would only say "a subcommand is required"; name the culprit.
      const std::string name = argv[1];
      const auto subs = app.get_subcommands([](const CLI::App*) { return true; });
      const bool known = std::any_of(subs.begin(), subs.end(), [&](const CLI::App* s) { return s->check_name(name); });
      if (!known) throw CLI::ExtrasError("unknown command '" + name + "'", CLI::ExitCodes::ExtrasError);
    }
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, not CLI11's multi-line banner, so scripts can show it as is.
    fmt::print(stderr, "qforge: error: {} (see 'qforge --help')\n", e.what());
    return 2;
  } catch (const qf::Error& e) {
    fmt::print(stderr, "qforge: error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "qforge: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "qforge: internal error: {}\n", e.what());
    return 3;
  }
  return 0;
}
