// Where a quant::Scheme's grid is exactly a ggml block type's, so codes an
// algorithm chose (GPTQ, AWQ, RTN) become GGUF blocks without re-rounding:
//   Q4_0 = int4:g32:full:f16scale  (x = d * (q - 8), q in 0..15 = code)
//   Q5_0 = int5:g32:full:f16scale  (x = d * (q - 16))
//   Q8_0 = int8:g32:f16scale       (x = d * q, q in -127..127; ggml's grid
//                                   also has -128, the restricted range is a subset)
// The asymmetric and K-types have no such scheme: their mins are fp16
// values (Q4_1/Q5_1) or 6-bit sub-scales (K-quants), not integer zero points.
#pragma once

#include <optional>

#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "quant/quantize.h"
#include "quant/scheme.h"

namespace qf::formats {

std::optional<quant::Scheme> ggml_grid_scheme(GgmlType type);
// The block type whose grid holds `scheme`'s exactly, if any: the three
// above, and their restricted-range twins (int4:g32:f16scale -> Q4_0, ...).
std::optional<GgmlType> ggml_type_for_scheme(const quant::Scheme& scheme);
// A quantized [out, in] matrix on such a grid as blocks (values identical to
// quant::dequantize); nullopt when the scheme has no ggml twin or the row
// length is not a multiple of 32.
std::optional<GgufBlocks> gguf_blocks_from_quantized(const quant::QuantizedTensor& q);

}  // namespace qf::formats
