// GPTQ checkpoints as AutoGPTQ, GPTQModel and transformers + optimum write and
// read them: a Hugging Face folder whose config.json has quantization_config
// {"quant_method": "gptq", "bits", "group_size" (-1: one group per row),
// "desc_act", "sym", "checkpoint_format": "gptq" | "gptq_v2"}, repeated in
// quantize_config.json. Per quantized linear layer NAME (in, out features):
//   NAME.qweight  I32 [in * bits / 32, out]  column o is the bit stream of the
//                 layer's codes along the input (formats/int32_packing.h,
//                 Stream: 32/bits codes per word, 3-bit codes 32 per 3 words)
//   NAME.qzeros   I32 [groups, out * bits / 32]  zero points packed along the
//                 output; "gptq" (v1) stores z - 1 (so z = 0 wraps to 2^bits - 1),
//                 "gptq_v2" stores z
//   NAME.scales   F16 [groups, out]
//   NAME.g_idx    I32 [in]  group of each input column (i / group_size unless act-order)
//   NAME.bias     when the layer has one
// with x = scale * (code - z); symmetric GPTQ has z = 2^(bits-1) everywhere.
// GPT-2's Conv1D layers use the same layout (GPTQ quantizes them as [out, in]).
#pragma once

#include <string>

#include "model/quantized_checkpoint.h"

namespace qf::model {

struct GptqWriteOptions {
  bool v2 = false;  // checkpoint_format "gptq_v2" (zeros as z) instead of "gptq" (z - 1)
};

// Every quantized layer must be an integer scheme of one width (2, 3, 4, 8),
// one group size (channel / tensor: group_size -1) and one symmetry; layers
// whose in or out features times bits are not a multiple of 32 are written
// as float weights (notice on stderr) and listed in GPTQModel's "dynamic"
// skip rules. F32 scales are rounded to fp16 (notice on stderr when that
// changes one); activation quantizers cannot be written (error).
void save_gptq_folder(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                      const std::string& source, const GptqWriteOptions& options = {});

// Reads a GPTQ folder: int schemes with fp16 scales (symmetric when "sym";
// the full range when a code 0 appears). A layer whose g_idx is not the
// trivial i / group_size (act-order) is dequantized into a float weight with a
// notice on stderr. Throws qf::Error naming the file and tensor for packed
// shapes that disagree with the layer, a g_idx out of range, a non-finite or
// non-positive scale, a symmetric layer with other zeros, a missing tensor,
// or a malformed quantization_config.
QuantizedModel load_gptq_folder(const std::string& path);

}  // namespace qf::model
