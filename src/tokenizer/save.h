// Writing a Vocab back to the standard tokenizer files our loaders (and the
// tools they come from) read. Every write is atomic.
#pragma once

#include <string>

#include "tokenizer/vocab.h"

namespace qf::tokenizer {

// A SentencePiece BPE model file (tokenizer.model) for SentencePiece
// vocabularies: pieces with scores and types, the special ids, byte fallback,
// and the identity normalizer with the vocab's add_dummy_prefix and
// remove_extra_whitespaces. The protobuf wire format is written directly
// (field numbers of sentencepiece_model.proto), as Debian's libsentencepiece
// ships no generated headers.
void write_sentencepiece_model(const std::string& path, const Vocab& vocab);

// GPT-2's encoder.json + vocab.bpe into `dir`, for ByteLevelBPE vocabularies.
void write_gpt2_bpe(const std::string& dir, const Vocab& vocab);

}  // namespace qf::tokenizer
