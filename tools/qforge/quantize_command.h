#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge quantize MODEL -o OUT --method rtn|gptq|awq|smoothquant [--weights SCHEME] [--acts SCHEME ...]
//  [--calib FILE ...] [--budget-bpw X] [--skip REGEX]`
void register_quantize(CLI::App& app);

}  // namespace qf::cli
