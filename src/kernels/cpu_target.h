// Which SIMD code paths this process may run. Every kernel has one
// implementation per Target; a Target is usable when the binary was built with
// it and the CPU (and OS, for the AVX-512 state) supports it. ARM NEON would be
// one more Target with its own source file (kernels/README in
// docs/architecture.md describes how to add one).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qf::kernels {

enum class Target {
  Scalar,      // plain C++; the reference every other target is tested against
  Avx2,        // AVX2 + FMA + F16C (Haswell, Zen 1)
  AvxVnni,     // AVX2 + the VEX-encoded VNNI dot products (Alder Lake, Zen 5)
  Avx512Vnni,  // AVX-512 F/BW/DQ/VL + VNNI (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4)
};

// "scalar", "avx2", "avxvnni", "avx512vnni".
std::string_view target_name(Target t);
// Throws qf::Error listing the names for anything else.
Target parse_target(std::string_view name);

// True when this CPU can run `t` (Scalar: always).
bool target_supported(Target t);
// Every supported target, Scalar first, fastest last.
std::vector<Target> supported_targets();

// The target kernels use by default: the fastest supported one, or the one
// named by the environment variable QF_KERNEL_TARGET (an unsupported or unknown
// name there throws qf::Error saying which targets this CPU has).
Target default_target();

// "scalar, avx2, avxvnni, avx512vnni": the targets this CPU supports, for messages.
std::string describe_targets();

}  // namespace qf::kernels
