#include "kernels/cpu_target.h"

#include <cstdint>
#include <cstdlib>

#include "core/error.h"

#if defined(QF_KERNELS_X86)
#include <cpuid.h>
#endif

namespace qf::kernels {
namespace {

constexpr Target kAllTargets[] = {Target::Scalar, Target::Avx2, Target::AvxVnni, Target::Avx512Vnni};

struct CpuFeatures {
  bool avx2 = false;      // AVX2 + FMA + F16C with the OS saving YMM state
  bool avx_vnni = false;  // additionally the VEX-encoded VNNI
  bool avx512 = false;    // F/BW/DQ/VL + VNNI with the OS saving ZMM and opmask state
};

#if defined(QF_KERNELS_X86)
bool bit(uint32_t reg, int b) { return (reg >> b) & 1u; }

// XCR0 through XGETBV, encoded as bytes so no -mxsave flag is needed.
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  uint32_t a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = bit(c, 12), osxsave = bit(c, 27), avx = bit(c, 28), f16c = bit(c, 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;     // XMM and YMM
  const bool zmm_state = (xcr0 & 0xe0) == 0xe0;   // opmask, ZMM0-15 upper halves, ZMM16-31
  if (!ymm_state || __get_cpuid_max(0, nullptr) < 7) return f;

  __cpuid_count(7, 0, a, b, c, d);
  const uint32_t leaf7_ebx = b, leaf7_ecx = c, max_subleaf = a;
  f.avx2 = bit(leaf7_ebx, 5) && fma && f16c;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx_vnni = f.avx2 && bit(a, 4);
  }
  const bool avx512f = bit(leaf7_ebx, 16), avx512dq = bit(leaf7_ebx, 17), avx512bw = bit(leaf7_ebx, 30),
             avx512vl = bit(leaf7_ebx, 31), avx512vnni = bit(leaf7_ecx, 11);
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni;
  return f;
}
#else
CpuFeatures detect() { return {}; }
#endif

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string names(bool only_supported) {
  std::string out;
  for (Target t : kAllTargets) {
    if (only_supported && !target_supported(t)) continue;
    if (!out.empty()) out += ", ";
    out += target_name(t);
  }
  return out;
}

}  // namespace

std::string_view target_name(Target t) {
  switch (t) {
    case Target::Scalar: return "scalar";
    case Target::Avx2: return "avx2";
    case Target::AvxVnni: return "avxvnni";
    case Target::Avx512Vnni: return "avx512vnni";
  }
  return "unknown";
}

Target parse_target(std::string_view name) {
  for (Target t : kAllTargets)
    if (target_name(t) == name) return t;
  fail("unknown kernel target '{}' (expected one of: {})", name, names(false));
}

bool target_supported(Target t) {
  switch (t) {
    case Target::Scalar: return true;
    case Target::Avx2: return features().avx2;
    case Target::AvxVnni: return features().avx_vnni;
    case Target::Avx512Vnni: return features().avx512;
  }
  return false;
}

std::vector<Target> supported_targets() {
  std::vector<Target> out;
  for (Target t : kAllTargets)
    if (target_supported(t)) out.push_back(t);
  return out;
}

Target default_target() {
  // Read on every call (it is cheap) so tests and tools may set it late.
  if (const char* env = std::getenv("QF_KERNEL_TARGET"); env && *env) {
    const Target t = parse_target(env);
    QF_CHECK(target_supported(t), "QF_KERNEL_TARGET={} is not supported by this CPU (supported: {})", env,
             names(true));
    return t;
  }
  return supported_targets().back();
}

std::string describe_targets() {
  return names(true);
}

}  // namespace qf::kernels
