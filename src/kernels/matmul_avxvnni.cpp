// AVX-VNNI Int8 kernels: the AVX2 ones (matmul_avx2_int8.inc) with the
// VEX-encoded vpdpbusd as the byte dot product. The F32 side of this target
// is matmul_f32_avx2. Everything but the entry point stays file-local (see
// matmul_simd_common.h).
#include <immintrin.h>

#include <cstring>

#include "kernels/matmul_simd_common.h"

namespace qf::kernels::detail {
namespace {

__m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_avx_epi32(acc, u, s); }

#include "kernels/matmul_avx2_int8.inc"

}  // namespace

void matmul_int8_avxvnni(const MatmulArgs& a) { int8_entry(a); }

}  // namespace qf::kernels::detail
