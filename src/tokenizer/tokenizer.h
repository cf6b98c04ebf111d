// Text <-> token ids for the vocabularies QuantForge meets, built from a
// plain-data Vocab (see vocab.h and load.h for where one comes from).
//
// VocabKind::SentencePiece works like SentencePiece's BPE model (and
// llama.cpp's SPM tokenizer): spaces become U+2581, a dummy prefix space is
// added when add_space_prefix, user-defined pieces are matched verbatim, the
// rest is split into UTF-8 characters which are merged pairwise, always the
// adjacent pair whose merged piece has the highest score first (leftmost on
// ties); pieces left unknown become byte tokens <0xNN> (or <unk> without them).
// Control tokens (BOS, EOS, ...) are never produced from text.
//
// VocabKind::ByteLevelBPE is GPT-2's tokenizer: GPT-2's pre-tokenization
// regex (hand-written, see unicode.h), bytes mapped to printable characters
// (bytes_to_unicode) and ranked merges, lowest rank first; per-word results
// are cached. User-defined tokens are matched verbatim before pre-tokenizing.
//
// Deviations from libsentencepiece, on purpose: malformed UTF-8 in the input
// is kept byte for byte through byte fallback (libsentencepiece replaces each
// bad byte by U+FFFD), and decode() returns the raw bytes of byte tokens even
// when they do not form valid UTF-8 (libsentencepiece writes U+FFFD). Hence
// decode(encode(x)) == x for any x when the vocabulary has byte fallback and
// remove_extra_whitespaces is off.
//
// All methods are const and safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace qf::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text`, with BOS first when add_bos (and the vocab has a BOS).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // Text of `ids`: control tokens (BOS, EOS, ...) are skipped, and for
  // SentencePiece vocabularies with add_space_prefix the dummy-prefix space
  // at the start of the text is removed. Throws qf::Error for an id out of range.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The bytes one token stands for, for streaming output: U+2581 -> ' ',
  // <0xNN> -> that byte, GPT-2 byte characters -> bytes, control tokens -> "",
  // <unk> -> " \u2047 " (as SentencePiece decodes it). No dummy-prefix removal:
  // a streaming caller drops the leading space of the first piece after BOS
  // itself when vocab().add_space_prefix. A multi-byte character may arrive
  // split over several byte tokens. Throws qf::Error for an id out of range.
  virtual std::string token_to_piece(int32_t id) const = 0;

  int32_t vocab_size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  const Vocab& vocab() const { return vocab_; }

 protected:
  explicit Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
  void check_id(int32_t id) const;
  Vocab vocab_;
};

// Checks the Vocab (sizes agree, special ids in range, merges well formed and
// made of known tokens, byte-level vocabularies hold all 256 byte characters)
// and builds the tokenizer for its kind. Throws qf::Error on a bad Vocab.
std::unique_ptr<Tokenizer> make_tokenizer(Vocab vocab);

// The same checks without building anything (loaders call it so that their
// errors can name the file).
void validate_vocab(const Vocab& vocab);

// "<0xNN>" -> NN, anything else -> -1 (the SentencePiece byte-piece spelling,
// two upper-case hex digits).
int parse_byte_piece(std::string_view piece);

}  // namespace qf::tokenizer
