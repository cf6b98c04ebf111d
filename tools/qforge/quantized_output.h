// The layouts a quantized model can be written in, one table for
// `qforge quantize --format` and `qforge convert --to`: each row names a
// layout, adapts the weight scheme to what the layout stores, and writes it.
#pragma once

#include <string>
#include <vector>

#include "model/quantized_checkpoint.h"
#include "quant/scheme.h"
#include "tokenizer/vocab.h"

namespace qf::cli {

// "qforge", "gptq", "awq", "compressed-tensors" (in table order).
std::vector<std::string> quantized_output_names();
bool is_quantized_output(const std::string& name);

// The scheme to quantize with for `format` (GPTQ and AWQ store fp16 scales);
// prints a note on stderr when it differs from `scheme`.
quant::Scheme scheme_for_output(const std::string& format, const quant::Scheme& scheme);

// Writes `qm` to `out` (a folder) in `format`; throws qf::Error for an unknown
// format or a model the layout cannot hold.
void write_quantized_output(const std::string& format, const std::string& out, const model::QuantizedModel& qm,
                            const tokenizer::Vocab& vocab, const std::string& source);

}  // namespace qf::cli
