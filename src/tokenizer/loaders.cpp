// SentencePiece .model, GPT-2 encoder.json + vocab.bpe, llama2.c
// tokenizer.bin, and finding the tokenizer beside a model.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/strict_json.h"
#include "tokenizer/load.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace qf::tokenizer {
namespace {

namespace fs = std::filesystem;
using formats::quote;

using detail::kSpace;

std::string_view file_text(const MappedFile& file) {
  return {reinterpret_cast<const char*>(file.data()), file.size()};
}

// Just enough of the protobuf wire format to read a few fields of
// SentencePiece's ModelProto that libsentencepiece does not expose.
class ProtoReader {
 public:
  explicit ProtoReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }
  // Reads the next key; returns the field number, sets the wire type.
  uint32_t next(uint32_t& wire) {
    const uint64_t key = varint();
    wire = static_cast<uint32_t>(key & 7);
    return static_cast<uint32_t>(key >> 3);
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      QF_CHECK(pos_ < data_.size(), "truncated protobuf varint");
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail("malformed protobuf varint");
  }
  std::string_view bytes() {
    const uint64_t len = varint();
    QF_CHECK(len <= data_.size() - pos_, "truncated protobuf field");
    const std::string_view out = data_.substr(pos_, len);
    pos_ += len;
    return out;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); return;
      case 1: advance(8); return;
      case 2: bytes(); return;
      case 5: advance(4); return;
      default: fail("unsupported protobuf wire type {}", wire);
    }
  }

 private:
  void advance(size_t n) {
    QF_CHECK(n <= data_.size() - pos_, "truncated protobuf field");
    pos_ += n;
  }
  std::string_view data_;
  size_t pos_ = 0;
};

struct SpmProtoInfo {
  std::vector<int32_t> types;  // per piece, as stored (default NORMAL = 1)
  int model_type = 1;          // TrainerSpec.model_type: UNIGRAM = 1 (default), BPE = 2, WORD = 3, CHAR = 4
  bool treat_whitespace_as_suffix = false;
  std::string normalizer_name;
  bool has_charsmap = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

SpmProtoInfo read_spm_proto(std::string_view data) {
  SpmProtoInfo info;
  ProtoReader top(data);
  while (!top.done()) {
    uint32_t wire = 0;
    const uint32_t field = top.next(wire);
    if (field == 1 && wire == 2) {  // SentencePiece piece
      ProtoReader piece(top.bytes());
      int32_t type = 1;
      while (!piece.done()) {
        uint32_t w = 0;
        const uint32_t f = piece.next(w);
        if (f == 3 && w == 0) {
          type = static_cast<int32_t>(piece.varint());
        } else {
          piece.skip(w);
        }
      }
      info.types.push_back(type);
    } else if (field == 2 && wire == 2) {  // TrainerSpec
      ProtoReader spec(top.bytes());
      while (!spec.done()) {
        uint32_t w = 0;
        const uint32_t f = spec.next(w);
        if (f == 3 && w == 0) {
          info.model_type = static_cast<int>(spec.varint());
        } else if (f == 24 && w == 0) {
          info.treat_whitespace_as_suffix = spec.varint() != 0;
        } else {
          spec.skip(w);
        }
      }
    } else if (field == 3 && wire == 2) {  // NormalizerSpec
      ProtoReader spec(top.bytes());
      while (!spec.done()) {
        uint32_t w = 0;
        const uint32_t f = spec.next(w);
        if (f == 1 && w == 2) {
          info.normalizer_name = std::string(spec.bytes());
        } else if (f == 2 && w == 2) {
          info.has_charsmap = !spec.bytes().empty();
        } else if (f == 3 && w == 0) {
          info.add_dummy_prefix = spec.varint() != 0;
        } else if (f == 4 && w == 0) {
          info.remove_extra_whitespaces = spec.varint() != 0;
        } else if (f == 5 && w == 0) {
          info.escape_whitespaces = spec.varint() != 0;
        } else {
          spec.skip(w);
        }
      }
    } else {
      top.skip(wire);
    }
  }
  return info;
}

int32_t read_i32(const std::byte* p) {
  int32_t v = 0;
  std::memcpy(&v, p, 4);
  return v;
}

float read_f32(const std::byte* p) {
  float v = 0;
  std::memcpy(&v, p, 4);
  return v;
}

// Tokens that a fine-tune added past the end of tokenizer.model, as listed in
// the tokenizer.json beside it (added_tokens with ids >= the model's size).
void append_added_tokens(Vocab& v, const std::string& json_path) {
  const auto file = MappedFile::open(json_path);
  with_context(json_path, [&] {
    const auto j = formats::parse_strict_json(file_text(*file));
    if (!j.is_object() || !j.contains("added_tokens") || !j["added_tokens"].is_array()) return;
    std::map<uint64_t, std::pair<std::string, bool>> extra;
    for (const auto& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t.contains("content") || !t["content"].is_string()) continue;
      const auto id = formats::json_to_uint(t["id"]);
      if (!id || *id < v.tokens.size()) continue;
      const bool special = t.contains("special") && t["special"].is_boolean() && t["special"].get<bool>();
      extra[*id] = {t["content"].get<std::string>(), special};
    }
    for (auto& [id, token] : extra) {
      QF_CHECK(id == v.tokens.size(), "added token {} has id {}, but the vocabulary ends at {}", quote(token.first),
               id, v.tokens.size());
      v.tokens.push_back(std::move(token.first));
      v.scores.push_back(0.0f);
      v.types.push_back(token.second ? TokenType::Control : TokenType::UserDefined);
    }
    validate_vocab(v);
  });
}

}  // namespace

Vocab load_sentencepiece_model(const std::string& path) {
  const auto file = MappedFile::open(path);
  return with_context(path, [&] {
    const std::string_view data = file_text(*file);
    sentencepiece::SentencePieceProcessor sp;
    const auto status = sp.LoadFromSerializedProto(data);
    QF_CHECK(status.ok(), "not a valid SentencePiece model: {}", status.ToString());
    const SpmProtoInfo info = read_spm_proto(data);
    const int n = sp.GetPieceSize();
    QF_CHECK(n > 0, "the SentencePiece model has no pieces");
    QF_CHECK(info.types.size() == static_cast<size_t>(n), "the model holds {} pieces but libsentencepiece reports {}",
             info.types.size(), n);
    QF_CHECK(info.model_type == 2,
             "SentencePiece model type {} is not supported (only BPE models, type 2, as Llama-family models use)",
             info.model_type);
    QF_CHECK(!info.has_charsmap && (info.normalizer_name.empty() || info.normalizer_name == "identity"),
             "SentencePiece normalization {} is not supported (only 'identity')", quote(info.normalizer_name));
    QF_CHECK(!info.treat_whitespace_as_suffix, "treat_whitespace_as_suffix is not supported");
    QF_CHECK(info.escape_whitespaces, "models with escape_whitespaces off are not supported");

    Vocab v;
    v.kind = VocabKind::SentencePiece;
    v.tokens.reserve(n);
    v.scores.reserve(n);
    v.types.reserve(n);
    for (int i = 0; i < n; ++i) {
      v.tokens.push_back(sp.IdToPiece(i));
      v.scores.push_back(sp.GetScore(i));
      const int32_t t = info.types[i];
      QF_CHECK(t >= 1 && t <= 6, "piece {} has an unknown type {}", i, t);
      v.types.push_back(static_cast<TokenType>(t));
    }
    v.bos_id = sp.bos_id();
    v.eos_id = sp.eos_id();
    v.unk_id = sp.unk_id();
    v.pad_id = sp.pad_id();
    v.add_bos = v.bos_id >= 0;
    v.add_space_prefix = info.add_dummy_prefix;
    v.remove_extra_whitespaces = info.remove_extra_whitespaces;
    validate_vocab(v);
    return v;
  });
}

Vocab load_llama2c_tokenizer(const std::string& path, int32_t vocab_size) {
  const auto file = MappedFile::open(path);
  return with_context(path, [&] {
    QF_CHECK(vocab_size >= 0, "invalid vocabulary size {}", vocab_size);
    const std::byte* p = file->data();
    const size_t size = file->size();
    QF_CHECK(size >= 4, "truncated llama2.c tokenizer: {} bytes, too short for the header", size);
    const int32_t max_len = read_i32(p);
    QF_CHECK(max_len > 0 && max_len <= (1 << 16), "implausible max_token_length {} in the header", max_len);
    Vocab v;
    v.kind = VocabKind::SentencePiece;
    size_t pos = 4;
    while (vocab_size > 0 ? v.tokens.size() < static_cast<size_t>(vocab_size) : pos < size) {
      const size_t index = v.tokens.size();
      QF_CHECK(size - pos >= 8, "truncated llama2.c tokenizer: the file ends at byte {}, inside the header of token {}{}",
               size, index, vocab_size > 0 ? fmt::format(" (expected {} tokens)", vocab_size) : "");
      const float score = read_f32(p + pos);
      const int32_t len = read_i32(p + pos + 4);
      pos += 8;
      QF_CHECK(std::isfinite(score), "token {} has a non-finite score", index);
      QF_CHECK(len >= 0 && len <= max_len, "token {} has length {} (max_token_length is {})", index, len, max_len);
      QF_CHECK(static_cast<size_t>(len) <= size - pos,
               "truncated llama2.c tokenizer: token {} needs {} bytes at offset {}, the file has {}", index, len, pos,
               size);
      std::string piece(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(len));
      pos += static_cast<size_t>(len);
      TokenType type = TokenType::Normal;
      if (index == 0) {
        type = TokenType::Unknown;
        piece = "<unk>";
      } else if (index == 1) {
        type = TokenType::Control;
        piece = "<s>";
      } else if (index == 2) {
        type = TokenType::Control;
        piece = "</s>";
      } else if (parse_byte_piece(piece) >= 0) {
        type = TokenType::Byte;
      } else if (piece.empty()) {
        type = TokenType::Unused;
      } else {
        std::string escaped;
        escaped.reserve(piece.size() + 8);
        for (const char c : piece) {
          if (c == ' ') {
            escaped.append(kSpace);
          } else {
            escaped.push_back(c);
          }
        }
        piece = std::move(escaped);
      }
      v.tokens.push_back(std::move(piece));
      v.scores.push_back(score);
      v.types.push_back(type);
    }
    QF_CHECK(pos == size, "{} unexpected bytes after the {} tokens", size - pos, v.tokens.size());
    QF_CHECK(v.tokens.size() >= 3, "a llama2.c tokenizer needs at least <unk>, <s> and </s>; this one has {} tokens",
             v.tokens.size());
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    v.add_bos = true;
    v.add_space_prefix = true;
    v.remove_extra_whitespaces = false;  // llama2.c's encoder keeps every space
    validate_vocab(v);
    return v;
  });
}

Vocab load_gpt2_bpe(const std::string& encoder_json, const std::string& vocab_bpe) {
  Vocab v;
  v.kind = VocabKind::ByteLevelBPE;
  {
    const auto file = MappedFile::open(encoder_json);
    with_context(encoder_json, [&] {
      const auto j = formats::parse_strict_json(file_text(*file));
      QF_CHECK(j.is_object(), "expected a JSON object of token -> id");
      QF_CHECK(!j.empty(), "the vocabulary is empty");
      std::vector<const std::string*> by_id(j.size(), nullptr);
      for (const auto& [token, value] : j.items()) {
        const auto id = formats::json_to_uint(value);
        QF_CHECK(id.has_value(), "token {} has id {}, not a non-negative integer", quote(token), value.dump());
        QF_CHECK(*id < by_id.size(), "token {} has id {}, but there are only {} tokens (ids must be 0..{})",
                 quote(token), *id, by_id.size(), by_id.size() - 1);
        QF_CHECK(by_id[*id] == nullptr, "tokens {} and {} share id {}", quote(*by_id[*id]), quote(token), *id);
        by_id[*id] = &token;
      }
      v.tokens.reserve(by_id.size());
      for (const auto* t : by_id) v.tokens.push_back(*t);
    });
  }
  v.types.assign(v.tokens.size(), TokenType::Normal);
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.tokens[i] == "<|endoftext|>") {
      v.types[i] = TokenType::Control;
      v.bos_id = v.eos_id = static_cast<int32_t>(i);
    }
  }
  v.add_bos = false;
  v.add_space_prefix = false;
  {
    const auto file = MappedFile::open(vocab_bpe);
    with_context(vocab_bpe, [&] {
      std::string_view text = file_text(*file);
      size_t line_no = 0;
      while (!text.empty()) {
        const size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
        const size_t space = line.find(' ');
        QF_CHECK(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
                     line.find(' ', space + 1) == std::string_view::npos,
                 "line {}: {} is not two tokens separated by one space", line_no, quote(line));
        v.merges.emplace_back(line);
      }
      QF_CHECK(!v.merges.empty(), "no merges found");
    });
  }
  with_context(encoder_json + " + " + vocab_bpe, [&] { validate_vocab(v); });
  return v;
}

Vocab find_tokenizer(const std::string& model_dir_or_file) {
  const fs::path given(model_dir_or_file);
  std::error_code ec;
  QF_CHECK(fs::exists(given, ec), "{}: no such file or folder (looking for its tokenizer)", model_dir_or_file);
  fs::path dir = given;
  if (!fs::is_directory(given, ec)) {
    const std::string name = given.filename().string();
    const std::string ext = given.extension().string();
    if (name == "tokenizer.json") return load_hf_tokenizer_json(given.string());
    if (ext == ".model") return load_sentencepiece_model(given.string());
    if (name == "encoder.json") return load_gpt2_bpe(given.string(), (given.parent_path() / "vocab.bpe").string());
    if (name == "tokenizer.bin" || (name.starts_with("tok") && ext == ".bin")) {
      return load_llama2c_tokenizer(given.string());
    }
    dir = given.parent_path();
    if (dir.empty()) dir = ".";
  }
  const auto is_file = [&](const fs::path& p) { return fs::is_regular_file(p, ec); };
  // "tok*<ext>" files in the folder, sorted by name.
  const auto glob_tok = [&](const std::string& ext) {
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.starts_with("tok") && e.path().extension() == ext && is_file(e.path())) found.push_back(e.path());
    }
    std::sort(found.begin(), found.end());
    return found;
  };
  if (is_file(dir / "tokenizer.model")) {
    Vocab v = load_sentencepiece_model((dir / "tokenizer.model").string());
    if (is_file(dir / "tokenizer.json")) append_added_tokens(v, (dir / "tokenizer.json").string());
    return v;
  }
  if (is_file(dir / "tokenizer.json")) return load_hf_tokenizer_json((dir / "tokenizer.json").string());
  if (is_file(dir / "encoder.json") && is_file(dir / "vocab.bpe")) {
    return load_gpt2_bpe((dir / "encoder.json").string(), (dir / "vocab.bpe").string());
  }
  if (const auto models = glob_tok(".model"); !models.empty()) {
    QF_CHECK(models.size() == 1, "{}: several SentencePiece models ({}, {}, ...); name the one to use",
             dir.string(), models[0].filename().string(), models[1].filename().string());
    return load_sentencepiece_model(models[0].string());
  }
  if (is_file(dir / "tokenizer.bin")) return load_llama2c_tokenizer((dir / "tokenizer.bin").string());
  if (const auto bins = glob_tok(".bin"); !bins.empty()) {
    QF_CHECK(bins.size() == 1, "{}: several llama2.c tokenizers ({}, {}, ...); name the one to use", dir.string(),
             bins[0].filename().string(), bins[1].filename().string());
    return load_llama2c_tokenizer(bins[0].string());
  }
  fail("no tokenizer found for {}: looked in {} for tokenizer.json, tokenizer.model, encoder.json + vocab.bpe, "
       "tok*.model, tokenizer.bin and tok*.bin",
       model_dir_or_file, dir.string());
}

}  // namespace qf::tokenizer
