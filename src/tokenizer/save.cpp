#include "tokenizer/save.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace qf::tokenizer {
namespace {

// Protocol buffer wire format: varints, 32-bit floats and length-delimited fields.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void put_tag(std::string& out, uint32_t field, uint32_t wire_type) { put_varint(out, (field << 3) | wire_type); }
void put_uint(std::string& out, uint32_t field, uint64_t v) {
  put_tag(out, field, 0);
  put_varint(out, v);
}
// int32 fields encode negative values (-1 = "none") as 10-byte varints.
void put_int32(std::string& out, uint32_t field, int32_t v) { put_uint(out, field, static_cast<uint64_t>(static_cast<int64_t>(v))); }
void put_float(std::string& out, uint32_t field, float v) {
  put_tag(out, field, 5);
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

}  // namespace

void write_sentencepiece_model(const std::string& path, const Vocab& vocab) {
  QF_CHECK(vocab.kind == VocabKind::SentencePiece, "{}: a SentencePiece model holds SentencePiece vocabularies only",
           path);
  std::string model;
  bool byte_fallback = false;
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    std::string piece;  // ModelProto.SentencePiece
    put_bytes(piece, 1, vocab.tokens[i]);
    put_float(piece, 2, i < vocab.scores.size() ? vocab.scores[i] : 0.0f);
    TokenType type = i < vocab.types.size() ? vocab.types[i] : TokenType::Normal;
    // libsentencepiece refuses a model whose unk id is not of type UNKNOWN;
    // Gemma 3's GGUF marks <unk> as a control token.
    if (static_cast<int64_t>(i) == vocab.unk_id) type = TokenType::Unknown;
    put_uint(piece, 3, static_cast<uint32_t>(type));
    byte_fallback |= type == TokenType::Byte;
    put_bytes(model, 1, piece);  // ModelProto.pieces
  }
  std::string trainer;  // TrainerSpec
  put_uint(trainer, 3, 2);  // model_type = BPE
  put_int32(trainer, 4, static_cast<int32_t>(vocab.tokens.size()));
  put_uint(trainer, 35, byte_fallback ? 1 : 0);
  put_int32(trainer, 40, vocab.unk_id);
  put_int32(trainer, 41, vocab.bos_id);
  put_int32(trainer, 42, vocab.eos_id);
  put_int32(trainer, 43, vocab.pad_id);
  put_bytes(model, 2, trainer);
  std::string normalizer;  // NormalizerSpec
  put_bytes(normalizer, 1, "identity");
  put_uint(normalizer, 3, vocab.add_space_prefix ? 1 : 0);
  put_uint(normalizer, 4, vocab.remove_extra_whitespaces ? 1 : 0);
  put_uint(normalizer, 5, 1);  // escape_whitespaces: spaces become U+2581
  put_bytes(model, 3, normalizer);
  write_file_atomically(path, std::as_bytes(std::span(model)));
}

void write_gpt2_bpe(const std::string& dir, const Vocab& vocab) {
  QF_CHECK(vocab.kind == VocabKind::ByteLevelBPE, "{}: encoder.json + vocab.bpe hold byte-level BPE vocabularies only",
           dir);
  nlohmann::ordered_json encoder = nlohmann::ordered_json::object();
  for (size_t i = 0; i < vocab.tokens.size(); ++i) encoder[vocab.tokens[i]] = i;
  std::string bpe = "#version: 0.2\n";
  for (const auto& m : vocab.merges) bpe += m + "\n";
  const auto root = std::filesystem::path(dir);
  const std::string enc = encoder.dump();
  write_file_atomically((root / "encoder.json").string(), std::as_bytes(std::span(enc)));
  write_file_atomically((root / "vocab.bpe").string(), std::as_bytes(std::span(bpe)));
}

}  // namespace qf::tokenizer
