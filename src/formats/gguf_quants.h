// ggml's block-quantized tensor types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (blocks
// of 32) and the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (super-blocks of 256).
// Byte layouts as in ggml-common.h (all little-endian, fp16 = IEEE half):
//   Q4_0  {f16 d; u8 qs[16]}                     x = d * (nibble - 8)
//   Q4_1  {f16 d, m; u8 qs[16]}                  x = d * nibble + m
//   Q5_0  {f16 d; u8 qh[4]; u8 qs[16]}           x = d * (q5 - 16)
//   Q5_1  {f16 d, m; u8 qh[4]; u8 qs[16]}        x = d * q5 + m
//   Q8_0  {f16 d; i8 qs[32]}                     x = d * q
//     (legacy types: byte j holds element j in its low nibble and element
//     j + 16 in its high nibble; the fifth bit of element j is bit j of qh)
//   Q2_K  {u8 scales[16]; u8 qs[64]; f16 d, dmin}     16 sub-blocks of 16,
//         4-bit scale (low nibble) and min (high nibble): x = d*sc*q - dmin*m
//   Q3_K  {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}  16 sub-blocks of
//         16, 6-bit signed scales (offset 32): x = d*(sc-32)*(q3 - 4)
//   Q4_K  {f16 d, dmin; u8 scales[12]; u8 qs[128]}    8 sub-blocks of 32,
//         6-bit scales and mins packed in 12 bytes: x = d*sc*q - dmin*m
//   Q5_K  {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}  like Q4_K, 5 bits
//   Q6_K  {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}  16 sub-blocks of 16:
//         x = d*sc*(q6 - 32)
// (the K-quants' bit positions are spelled out where they are decoded).
//
// Encoders follow ggml's reference algorithms (ggml-quants.c):
//   - Q8_0 and Q4_0 (and Q4_1, Q5_0, Q5_1) without importance weights are
//     byte for byte quantize_row_*_ref: Q8_0 d = amax/127, q = roundf(x/d);
//     Q4_0 d = (the signed value of largest magnitude) / -8, q =
//     min(15, trunc(x/d + 8.5)); Q4_1/Q5_1 from [min, max].
//   - The K-quants without importance weights follow quantize_row_*_ref
//     (make_qkx2_quants' weighted scale/min search, make_q3_quants,
//     make_qx_quants); with importance weights they follow quantize_row_*_impl
//     (make_qkx3_quants, make_qp_quants for the super-block scales).
// Importance weights ("imatrix") are one non-negative weight per element of
// the row (in practice E[x^2] of the input column the weight multiplies);
// they enter the weighted error the scale/min searches minimize, as
// llama.cpp's quant_weights do. Q8_0 ignores them (as ggml does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "formats/gguf.h"

namespace qf::formats {

// The block types encoded and decoded here (the ten above).
bool gguf_is_codec_type(GgmlType type);
// Bytes of one row of `cols` values; throws when cols is not a multiple of
// the block size (naming both) or the type is not a codec type.
size_t gguf_row_bytes(GgmlType type, int64_t cols);

// One row of whole blocks: bytes.size() must be gguf_row_bytes(type, out.size()).
void gguf_dequantize_row(GgmlType type, std::span<const std::byte> bytes, std::span<float> out);
// `importance` is empty or one weight per element of `row` (finite, >= 0).
// Values must be finite (quantize_gguf_matrix checks and names the culprit).
void gguf_quantize_row(GgmlType type, std::span<const float> row, std::span<std::byte> out,
                       std::span<const float> importance = {});

// A row-major [rows, cols] float matrix (any float dtype) as U8
// [rows, gguf_row_bytes(cols)]; `column_importance` is empty or one weight
// per column, shared by every row. NaN/Inf is a qf::Error naming row and column.
Tensor gguf_quantize_matrix(GgmlType type, const Tensor& weights, std::span<const float> column_importance = {});
// The inverse for a tensor of row-major `shape` stored as `bytes` (exactly
// ggml_nbytes(type, shape) of them): an owning F32 tensor.
Tensor gguf_dequantize_tensor(GgmlType type, std::span<const std::byte> bytes, const Shape& shape);

}  // namespace qf::formats
