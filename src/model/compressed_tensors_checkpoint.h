// compressed-tensors "pack-quantized" checkpoints (llm-compressor writes
// them, vLLM and transformers read them): config.json quantization_config
// {"quant_method": "compressed-tensors", "format": "pack-quantized",
//  "quantization_status": "compressed",
//  "config_groups": {"group_N": {"targets": ["Linear"] | [layer names, "re:REGEX"],
//      "weights": {"num_bits", "type": "int", "symmetric", "strategy": "group" | "channel",
//                  "group_size"}, "input_activations": null, ...}},
//  "ignore": ["lm_head", ...]}. Per quantized linear layer NAME ([out, in]):
//   NAME.weight_packed      I32 [out, ceil(in / (32 / bits))]  codes along the input,
//                           32/bits per word from the low bits (formats/int32_packing.h,
//                           WordAligned: 10 per word for 3 bits), zero padded
//   NAME.weight_scale       [out, groups] F16 | BF16 | F32
//   NAME.weight_zero_point  I32 [ceil(out / (32 / bits)), groups]  asymmetric only,
//                           packed along the output
//   NAME.weight_shape       I64 [2] = [out, in]
// Codes are the signed q in [-2^(b-1), 2^(b-1)) stored + 2^(b-1), zero points
// likewise, x = scale * (q - zp): the unsigned codes and zero points of
// quant/row_codec.h exactly. GPT-2 layers (Conv1D, not "Linear") are targeted by name.
#pragma once

#include <string>

#include "model/quantized_checkpoint.h"

namespace qf::model {

// Integer schemes of any width 2..8 and granularity (tensor becomes channel);
// each distinct scheme gets a config group. F32 and power-of-two scales are
// written as F32, F16 ones as F16. Float layers go to "ignore". Activation
// quantizers are an error.
void save_compressed_tensors_folder(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                                    const std::string& source);

// Reads a pack-quantized folder. Throws qf::Error naming the file and tensor
// for packed shapes that disagree with the layer or weight_shape, non-finite or
// non-positive scales, a missing tensor, or a quantization_config this build
// cannot run (another format, activation quantization, a non-int type).
QuantizedModel load_compressed_tensors_folder(const std::string& path);

}  // namespace qf::model
