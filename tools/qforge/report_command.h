#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// qforge report MODEL [--compare QUANTIZED ...] --text FILE -o report.html [--json report.json]
void register_report(CLI::App& app);

}  // namespace qf::cli
