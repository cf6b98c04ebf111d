// Writing a Model out as a Hugging Face folder (config.json, model.safetensors
// and tokenizer files), the layout transformers and our own loader read.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "model/model.h"
#include "tokenizer/vocab.h"

namespace qf::model {

// `dir` is created if needed. Matrices are stored as `dtype` (F32, F16 or
// BF16, round to nearest even), vectors as F32. The tokenizer files beside
// `source` (tokenizer.json / tokenizer_config.json / tokenizer.model /
// encoder.json + vocab.bpe / tok*.model / tokenizer.bin) are copied when there
// are any; otherwise (a GGUF source) `vocab` is written as tokenizer.model or
// encoder.json + vocab.bpe. Every file is written atomically.
void save_hf_folder(const std::string& dir, const Model& model, const tokenizer::Vocab& vocab,
                    const std::string& source, DType dtype);

// The pieces save_hf_folder is made of, for writers of other folder layouts
// (model/quantized_checkpoint.h).
// Creates `dir` and its parents if needed.
void create_output_folder(const std::string& dir);
// dir/config.json, indented by 2, atomically.
void write_config_json(const std::string& dir, const nlohmann::json& config);
// The tokenizer files, as described for save_hf_folder.
void write_tokenizer_files(const std::string& dir, const tokenizer::Vocab& vocab, const std::string& source);

// Stored dtype of each tensor when converting: matrices in `dtype`, vectors F32.
Tensor convert_for_storage(const Tensor& t, DType dtype);

}  // namespace qf::model
