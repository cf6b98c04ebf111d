// `qforge quantize ... --format gguf --weights q4_k_m`: the GGUF output path
// of the quantize command, kept apart from the folder writer.
#pragma once

#include <string>
#include <vector>

#include "algo/quantize_model.h"
#include "calib/calibration_set.h"
#include "model/model.h"
#include "tokenizer/vocab.h"

namespace qf::cli {

// The scheme the pipeline quantizes linears with for a GGUF mixture: the
// base type's grid (formats/gguf_grid.h) for calibrated methods, which
// therefore need q4_0, q5_0 or q8_0; RTN encodes with ggml's own encoders
// and gets the grid too where there is one (int8:g32 otherwise, unused).
// Throws for an unknown mixture or a method the format cannot carry.
quant::Scheme gguf_pipeline_scheme(const std::string& recipe, algo::Method method);

struct GgufQuantizeRequest {
  const model::Model* model = nullptr;
  const tokenizer::Vocab* vocab = nullptr;
  const std::vector<calib::TokenSequence>* calibration = nullptr;  // empty: no importance weights
  algo::QuantizeOptions pipeline;
  std::string recipe;  // "q4_k_m", ...
  std::string output;  // OUT.gguf
  bool verbose = false;
};

// Quantizes and writes the file; prints the summary on stdout and fallback
// notices on stderr.
void write_quantized_gguf(const GgufQuantizeRequest& request);

}  // namespace qf::cli
