// Writing a Model out as a Hugging Face folder (config.json, model.safetensors
// and tokenizer files), the layout transformers and our own loader read.
#pragma once

#include <string>

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

// Stored dtype of each tensor when converting: matrices in `dtype`, vectors F32.
Tensor convert_for_storage(const Tensor& t, DType dtype);

}  // namespace qf::model
