#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge generate MODEL [--prompt TEXT] [-n N] [--temp T --top-k K --top-p P --seed S]`
void register_generate(CLI::App& app);

}  // namespace qf::cli
