#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge eval MODEL --text FILE [--protocol chunks|strided|lines] [--baseline MODEL] ...`
void register_eval(CLI::App& app);

}  // namespace qf::cli
