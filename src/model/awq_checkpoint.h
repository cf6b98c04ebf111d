// AWQ checkpoints in AutoAWQ's "gemm" layout, as transformers and vLLM read
// them: config.json quantization_config {"quant_method": "awq", "bits": 4,
// "group_size" (-1: one group per row), "zero_point": true, "version": "gemm",
// "modules_to_not_convert": [...] | null}. Per quantized linear layer NAME:
//   NAME.qweight  I32 [in, out / 8]      codes packed along the OUTPUT, word k of a
//                 row holding columns 8k..8k+7 in the order [0, 2, 4, 6, 1, 3, 5, 7]
//                 (formats/int32_packing.h, AwqOrder)
//   NAME.qzeros   I32 [groups, out / 8]  zero points z, the same order
//   NAME.scales   F16 [groups, out]
//   NAME.bias     when the layer has one
// with x = scale * (code - z). groups = in / group_size: AWQ has no ragged last group.
#pragma once

#include <string>

#include "model/quantized_checkpoint.h"

namespace qf::model {

// Every quantized layer must be a 4-bit integer scheme of one group size
// (channel / tensor: -1); symmetric layers are written with zero 8. Layers
// whose out features are not a multiple of 8, or whose in features are not a
// multiple of the group size, are written as float weights (notice on
// stderr) and listed in modules_to_not_convert. F32 scales are rounded to
// fp16 (notice when that changes one); activation quantizers are an error.
void save_awq_folder(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                     const std::string& source);

// Reads an AWQ gemm folder: int4 schemes with fp16 scales, asymmetric unless
// every zero of a layer is 8 (then symmetric, the full range when a code 0
// appears; both decode identically). Throws qf::Error naming the file and
// tensor for packed shapes that disagree with the layer, a non-finite or
// non-positive scale, a missing tensor, or a malformed quantization_config
// (another version than gemm, bits other than 4, zero_point false).
QuantizedModel load_awq_folder(const std::string& path);

}  // namespace qf::model
