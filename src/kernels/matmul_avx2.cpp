// Placeholder until the SIMD kernel lands: forwards to the scalar reference.
#include "kernels/matmul_targets.h"
namespace qf::kernels::detail {
void matmul_f32_avx2(const MatmulArgs& a) { matmul_f32_scalar(a); }
void matmul_int8_avx2(const MatmulArgs& a) { matmul_int8_scalar(a); }
}  // namespace qf::kernels::detail
