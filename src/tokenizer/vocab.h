// A tokenizer's vocabulary as plain data, independent of the file it came
// from: SentencePiece .model, Hugging Face tokenizer.json, GPT-2
// encoder.json + vocab.bpe, llama2.c tokenizer.bin, or GGUF tokenizer.ggml.*
// keys. Tokenizers are built from a Vocab; GGUF writes one out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qf::tokenizer {

enum class VocabKind {
  SentencePiece,  // Llama-style: scored pieces with U+2581 for spaces, byte fallback <0xNN>
  ByteLevelBPE,   // GPT-2 style: byte-to-unicode mapped pieces and ranked merges
};

// Numbering shared with SentencePiece's ModelProto and GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct Vocab {
  VocabKind kind = VocabKind::SentencePiece;
  std::vector<std::string> tokens;  // piece text (UTF-8), index = token id
  std::vector<float> scores;        // SentencePiece scores (empty for ByteLevelBPE)
  std::vector<TokenType> types;     // one per token
  std::vector<std::string> merges;  // ByteLevelBPE: "a b" in rank order (empty for SentencePiece)
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = true;           // prepend BOS when encoding a document
  bool add_space_prefix = true;  // SentencePiece's dummy prefix: encode(" " + text)
  // SentencePiece normalizer option (GGUF tokenizer.ggml.remove_extra_whitespaces):
  // drop leading and trailing spaces and collapse runs of spaces before encoding.
  // tok512.model sets it; Llama-2's tokenizer.model and llama2.c's tokenizer.bin do not.
  bool remove_extra_whitespaces = false;
};

}  // namespace qf::tokenizer
