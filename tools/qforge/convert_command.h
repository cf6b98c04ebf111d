#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge convert IN OUT [--dtype f32|f16|bf16] [--to TARGET]`: float targets
// write OUT.gguf as GGUF and anything else as a Hugging Face folder; the
// quantized layouts (qforge, gptq, awq, compressed-tensors) rewrite a
// quantized input's codes and scales in another layout.
void register_convert(CLI::App& app);

}  // namespace qf::cli
