#include "runtime_flags.h"

#include "core/error.h"
#include "kernels/cpu_target.h"

namespace qf::cli {

void add_runtime_flags(CLI::App* cmd, RuntimeFlags& flags) {
  cmd->add_flag("--dequantize", flags.dequantize,
                "run quantized layers dequantized to f32 through OpenBLAS instead of on the integer kernels");
  cmd->add_flag("--int8-acts", flags.int8_acts,
                "quantize activations to int8 per token for the integer kernels (W8A8/W4A8: faster, a little less exact)");
  cmd->add_option("--target", flags.target, "integer kernel code path (default: the fastest this CPU has)")
      ->check(CLI::IsMember({"scalar", "avx2", "avxvnni", "avx512vnni"}));
}

model::LoadOptions load_options(const RuntimeFlags& flags) { return {.integer_kernels = !flags.dequantize}; }

void apply_runtime_flags(const RuntimeFlags& flags, runtime::RuntimeOptions& options) {
  const kernels::Target t = flags.target.empty() ? kernels::default_target() : kernels::parse_target(flags.target);
  QF_CHECK(kernels::target_supported(t), "--target {} is not supported on this CPU (it has: {})", flags.target,
           kernels::describe_targets());
  options.kernel_target = t;
  options.int8_activations = flags.int8_acts;
}

}  // namespace qf::cli
