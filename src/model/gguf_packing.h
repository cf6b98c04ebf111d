// GGUF block tensors repacked straight into the integer kernels' layout, so a
// quantized GGUF runs on src/kernels without a float copy. Every mapping is
// exact (PackedMatrix::dequantize_row equals ggml's dequantization bit for bit):
//   Q4_0  x = d * (q - 8)           4-bit codes, groups of 32, zero 8, scale d
//   Q8_0  x = d * q                 8-bit symmetric codes, groups of 32
//   Q4_1  x = d * q + m             4-bit codes, groups of 32, zero 0, min -m
//   Q4_K  x = d*sc * q - dmin*m     4-bit codes, groups of 32 (the sub-blocks),
//                                   scale d*sc, min dmin*m
//   Q6_K  x = d*sc * (q6 - 32)      8-bit signed codes q6 - 32, groups of 16,
//                                   scale d*sc (sc is signed: may be negative)
//   Q3_K  x = d*(sc-32) * (q3 - 4)  3-bit codes, groups of 16, zero 4
//   Q2_K  x = d*sc * q - dmin*m     2-bit codes, groups of 16, with mins
// The K types' dmin*m is no integer multiple of the scale, hence the kernels'
// float mins; their 16-value sub-blocks are the kernels' groups of 16. The K
// types keep ggml's two-level form (kernels::GroupParams::super_groups: one
// super-block per 256-weight block, int8 sub-scales and uint8 sub-mins times
// the fp16 d and dmin held as floats), which the kernels multiply out to the
// same floats ggml's decoders form; every type has one zero point per matrix.
// Resident bits per weight (file in brackets): Q4_K 4.75 (4.5), Q6_K 8.625
// (6.5625: its 6-bit codes take 8 bits, there being no 6-bit kernel), Q3_K
// 3.625 (3.4375), Q2_K 3.25 (2.625), Q4_0 5 (4.5), Q4_1 6 (5), Q8_0 9 (8.5).
// Scales may be zero (a sub-block of equal weights, or an all-zero block) or
// negative (Q4_0's d = max / -8, Q6_K's and Q3_K's signed sub-scales); the
// kernels take any finite scale. Q5_0, Q5_1 and Q5_K (5-bit codes) have no
// kernel and are dequantized on load.
#pragma once

#include <memory>

#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "kernels/packed_matrix.h"

namespace qf::model {

// Whether pack_gguf_blocks takes this block type.
bool gguf_kernels_support(formats::GgmlType type);

// `blocks` ([out, in] rows of whole blocks over `cols` weights) as a
// PackedMatrix whose dequantize_row equals ggml's dequantization bit for
// bit. Throws qf::Error for an unsupported type or a row size that does not
// match `cols`.
std::shared_ptr<const kernels::PackedMatrix> pack_gguf_blocks(const formats::GgufBlocks& blocks, int64_t cols);

}  // namespace qf::model
