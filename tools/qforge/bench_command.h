#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge bench MODEL | --synthetic NAME [-t N] [--pp N] [--tg N] [--json]`
void register_bench(CLI::App& app);

}  // namespace qf::cli
