// Internal: one entry point per Target, each in its own source file compiled
// with that target's instruction-set flags (src/kernels/CMakeLists.txt).
// matmul() checks arguments and dispatches here; these assume valid input.
#pragma once

#include <cstdint>

#include "kernels/activations.h"
#include "kernels/packed_matrix.h"

namespace qf::kernels::detail {

struct MatmulArgs {
  const PackedMatrix* w;
  const Activations* x;
  float* y;
  int64_t ldy;
  int64_t n_begin;
  int64_t n_end;
  bool accumulate;
};

void matmul_f32_scalar(const MatmulArgs& a);
void matmul_int8_scalar(const MatmulArgs& a);
void matmul_f32_avx2(const MatmulArgs& a);
void matmul_int8_avx2(const MatmulArgs& a);
void matmul_int8_avxvnni(const MatmulArgs& a);  // the f32 side of AvxVnni is matmul_f32_avx2
void matmul_f32_avx512(const MatmulArgs& a);
void matmul_int8_avx512vnni(const MatmulArgs& a);

// This thread's float scratch of at least n values (64-byte aligned, contents
// undefined, valid until the next call on this thread). Defined in matmul.cpp so
// that the SIMD files never instantiate allocation code with their flags.
float* thread_scratch(int64_t n);

}  // namespace qf::kernels::detail
