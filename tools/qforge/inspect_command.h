#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge inspect FILE [--scheme SPEC[,SPEC...]] [--json] [-t N]`
void register_inspect(CLI::App& app);

}  // namespace qf::cli
