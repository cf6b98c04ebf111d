// Placeholder until the SIMD kernel lands: forwards to the scalar reference.
#include "kernels/matmul_targets.h"
namespace qf::kernels::detail {
void matmul_int8_avxvnni(const MatmulArgs& a) { matmul_int8_scalar(a); }
}  // namespace qf::kernels::detail
