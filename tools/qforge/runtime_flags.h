// The flags every command that runs a model shares (eval, generate, bench):
// which kernels run quantized layers and with what activations.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "model/model.h"
#include "runtime/runtime.h"

namespace qf::cli {

struct RuntimeFlags {
  bool dequantize = false;  // run quantized models dequantized to f32 (the reference path)
  bool int8_acts = false;
  std::string target;       // empty: the fastest this CPU has
};

void add_runtime_flags(CLI::App* cmd, RuntimeFlags& flags);
model::LoadOptions load_options(const RuntimeFlags& flags);
// Sets the kernel target and activation precision; throws qf::Error for a
// target this CPU lacks.
void apply_runtime_flags(const RuntimeFlags& flags, runtime::RuntimeOptions& options);

}  // namespace qf::cli
