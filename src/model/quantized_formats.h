// The one entry point to every quantized checkpoint layout: which layout a
// folder holds (config.json's quantization_config.quant_method, or AutoGPTQ's
// quantize_config.json), reading it into a QuantizedModel, and writing one out
// in a chosen layout. load_model (model.h) dequantizes what load_quantized returns.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/quantized_checkpoint.h"
#include "quant/scheme.h"

namespace qf::model {

enum class QuantizedFormat { Qforge, Gptq, Awq, CompressedTensors };

// "qforge", "gptq", "awq", "compressed-tensors" (as the CLI spells them).
std::string_view quantized_format_name(QuantizedFormat f);
// Throws qf::Error listing the valid names.
QuantizedFormat parse_quantized_format(std::string_view name);
// The layouts whose names parse_quantized_format accepts, for messages.
std::string quantized_format_names();

// True when `path` (a folder, or a file in it) is a quantized checkpoint of
// any method, readable or not (load_quantized names an unsupported one).
bool is_quantized_checkpoint(const std::string& path);
// The layout of a quantized checkpoint; nullopt when `path` is not one.
// Throws qf::Error for a quant_method this build cannot read (bitsandbytes, fp8, ...).
std::optional<QuantizedFormat> detect_quantized_format(const std::string& path);

// Reads any supported quantized checkpoint, codes and scales bit for bit.
QuantizedModel load_quantized(const std::string& path);

// Writes `qm` in layout `format` into folder `dir` (see each layout's writer
// for what it cannot hold).
void save_quantized(QuantizedFormat format, const std::string& dir, const QuantizedModel& qm,
                    const tokenizer::Vocab& vocab, const std::string& source);

// The scheme to quantize with when the result goes to `format`: GPTQ and AWQ
// store fp16 scales, so F32 scales become F16 up front (the algorithms then
// see the scales that are stored). Other schemes are returned unchanged.
// Throws qf::Error for a scheme the layout cannot hold at all (nf4 in GPTQ,
// int8 in AWQ), before any quantization work is spent.
quant::Scheme scheme_for_format(QuantizedFormat format, const quant::Scheme& scheme);

}  // namespace qf::model
