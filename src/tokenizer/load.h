// Loaders that turn tokenizer files into a Vocab. Every error is a qf::Error
// whose message starts with the file's path.
#pragma once

#include <string>

#include "tokenizer/vocab.h"

namespace qf::tokenizer {

// SentencePiece .model (Llama-2 tokenizer.model, tok512.model), read with
// libsentencepiece: pieces, scores, types, BOS/EOS/UNK/PAD ids, and the
// normalizer's add_dummy_prefix and remove_extra_whitespaces. Only BPE models
// with the identity normalization are accepted (what Llama-family models use);
// unigram models or NFKC normalization would tokenize differently here.
Vocab load_sentencepiece_model(const std::string& path);

// Hugging Face tokenizer.json with a BPE model. Llama-2 style (a normalizer
// that replaces " " with U+2581, or a Metaspace pre-tokenizer) gives a
// SentencePiece vocab whose scores are -rank of the first merge that makes
// each piece (pieces no merge makes get scores below every merge), so the
// SentencePiece algorithm reproduces the ranked merges. A ByteLevel
// pre-tokenizer (GPT-2 regex) gives a ByteLevelBPE vocab. added_tokens become
// Control (special) or UserDefined tokens. BOS comes from the post-processor
// template or tokenizer_config.json beside the file, else from usual names.
Vocab load_hf_tokenizer_json(const std::string& path);

// GPT-2's encoder.json (token -> id) and vocab.bpe (ranked merges).
Vocab load_gpt2_bpe(const std::string& encoder_json, const std::string& vocab_bpe);

// llama2.c tokenizer.bin: int32 max_token_length, then per token a float32
// score, an int32 byte length and the bytes. Ids 0, 1, 2 are <unk>, <s>, </s>;
// spaces in pieces are stored as ' ' and become U+2581; <0xNN> pieces are byte
// tokens. vocab_size > 0: exactly that many tokens must be there; 0: read to
// the end of the file.
Vocab load_llama2c_tokenizer(const std::string& path, int32_t vocab_size = 0);

// The tokenizer of a model: `model_dir_or_file` is a folder, a model file (the
// tokenizer is looked for in its folder) or a tokenizer file itself. Looks for,
// in order: tokenizer.model (plus the added tokens past its end that a
// tokenizer.json beside it lists, as llama.cpp's converter does),
// tokenizer.json, encoder.json + vocab.bpe, tok*.model, tokenizer.bin,
// tok*.bin. Throws a qf::Error listing what was looked for when none is there.
Vocab find_tokenizer(const std::string& model_dir_or_file);

}  // namespace qf::tokenizer
