#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge convert IN OUT [--dtype f32|f16|bf16]`: OUT ending in .gguf is a GGUF
// file, anything else a Hugging Face folder.
void register_convert(CLI::App& app);

}  // namespace qf::cli
