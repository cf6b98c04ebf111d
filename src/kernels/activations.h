// The input of a matrix product, prepared once and shared by every packed
// matrix that reads it (q, k and v read the same activations): zero-padded to
// whole 64-wide chunks, and, for the int8 kernels, quantized per row (token).
//
// Int8 form (dynamic per-token symmetric, as in W8A8 / LLM.int8()):
//   scale[m] = max_k |x[m, k]| / 127 (a zero row gets scale 0 and zero codes);
//   q[m, k]  = clamp(round_half_even(x[m, k] * (1 / scale[m])), -127, 127),
//              multiplying by the float reciprocal exactly as the runtime's
//              simulated activation quantization does (runtime/activation_quant.cpp),
//              so the int8 kernels reproduce a simulated W8A8 model;
// q never holds -128 (the AVX2 kernels rely on that: |q| * |w| pairs fit int16).
// block_sums[m, b] = sum of q[m, 16b .. 16b+15] (the zero-point and min terms of
// asymmetric weight groups), f32_block_sums the same over x.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/aligned_buffer.h"

namespace qf::kernels {

// 16, not 32: groups of 16 (PackedMatrix) must start and end on a block.
inline constexpr int64_t kSumBlock = 16;

struct Activations {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t padded_cols = 0;                 // cols rounded up to kChunk
  AlignedBuffer<float> f32;                // [rows, padded_cols], zero padded
  std::vector<float> f32_block_sums;       // [rows, padded_cols / kSumBlock]
  bool quantized = false;                  // whether the int8 fields below are filled
  AlignedBuffer<int8_t> q;                 // [rows, padded_cols], zero padded
  std::vector<float> scale;                // [rows]
  std::vector<int32_t> block_sums;         // [rows, padded_cols / kSumBlock]

  const float* f32_row(int64_t m) const { return f32.data() + m * padded_cols; }
  const int8_t* q_row(int64_t m) const { return q.data() + m * padded_cols; }
  int64_t blocks() const { return padded_cols / kSumBlock; }
};

// Fills `a` from x [rows, cols] (row m at x + m * ld), reusing its buffers;
// with `quantize_int8` also the int8 form. Non-finite inputs are copied as is
// (their products are then NaN, as in the fp32 path); in the int8 form such a
// row gets scale NaN and zero codes, so its int8 outputs are NaN too.
void prepare_activations(Activations& a, const float* x, int64_t rows, int64_t cols, int64_t ld, bool quantize_int8);

}  // namespace qf::kernels
