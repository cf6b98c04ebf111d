#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge serve MODEL [--host H --port P --threads N --parallel K --ctx C --api-key KEY]`
void register_serve(CLI::App& app);

}  // namespace qf::cli
