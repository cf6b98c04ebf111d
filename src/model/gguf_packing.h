// GGUF block tensors (Q4_0, Q8_0) repacked straight into the integer kernels'
// layout, so a quantized GGUF runs on src/kernels without a float copy.
// Both are exact: Q4_0 (x = d * (q - 8), 32 weights, fp16 d) is 4-bit codes
// in groups of 32 with zero point 8 and scale d; Q8_0 (x = d * q) is 8-bit
// symmetric codes in groups of 32. ggml's d may be negative (Q4_0 divides
// the signed extreme by -8) or zero (an all-zero block); the kernels take
// any finite scale.
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
