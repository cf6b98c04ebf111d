// SentencePiece-style BPE encoding from scored pieces (see tokenizer.h).
#include <array>
#include <queue>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "formats/strict_json.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace qf::tokenizer::detail {
namespace {

constexpr std::string_view kUnkSurface = " \xE2\x81\x87 ";  // " U+2047 ", SentencePiece's default

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab v) : Tokenizer(std::move(v)) {
    byte_ids_.fill(-1);
    const size_t n = vocab_.tokens.size();
    for (size_t i = 0; i < n; ++i) {
      const auto id = static_cast<int32_t>(i);
      const std::string& piece = vocab_.tokens[i];
      const TokenType type = vocab_.types[i];
      all_.emplace(piece, id);
      // As SentencePiece: merges may form normal, user-defined and unused pieces only.
      if (type == TokenType::Normal || type == TokenType::UserDefined || type == TokenType::Unused) {
        mergeable_.emplace(piece, id);
      }
      if (type == TokenType::UserDefined) user_defined_.add(piece, id);
      if (type == TokenType::Byte) {
        const int b = parse_byte_piece(piece);
        if (b >= 0 && byte_ids_[b] < 0) byte_ids_[b] = id;
        has_bytes_ = true;
      }
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> out;
    if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
    const std::string norm = normalize(text);
    if (norm.empty()) return out;
    QF_CHECK(norm.size() < (size_t{1} << 31), "text of {} bytes is too long to encode at once", text.size());

    // Split into user-defined pieces (frozen) and single characters.
    std::vector<Symbol> symbols;
    symbols.reserve(norm.size());
    for (size_t pos = 0; pos < norm.size();) {
      int32_t ud = -1;
      size_t len = user_defined_.match(norm, pos, &ud);
      const bool freeze = len > 0;
      if (!freeze) len = unicode::utf8_char_len(norm, pos);
      const auto index = static_cast<int32_t>(symbols.size());
      symbols.push_back(Symbol{static_cast<uint32_t>(pos), static_cast<uint32_t>(len), index - 1,
                               pos + len < norm.size() ? index + 1 : -1, freeze});
      pos += len;
    }

    std::priority_queue<Pair, std::vector<Pair>, PairLess> agenda;
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
    const auto piece_of = [&](const Symbol& s) { return std::string_view(norm).substr(s.start, s.len); };
    const auto maybe_add = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0 || symbols[left].freeze || symbols[right].freeze) return;
      const std::string_view piece =
          std::string_view(norm).substr(symbols[left].start, symbols[left].len + symbols[right].len);
      const auto it = mergeable_.find(piece);
      if (it == mergeable_.end()) return;
      agenda.push(Pair{vocab_.scores[it->second], left, right, static_cast<uint32_t>(piece.size())});
      if (vocab_.types[it->second] == TokenType::Unused) {
        rev_merge[piece] = {piece_of(symbols[left]), piece_of(symbols[right])};
      }
    };
    for (size_t i = 1; i < symbols.size(); ++i) maybe_add(static_cast<int32_t>(i) - 1, static_cast<int32_t>(i));

    while (!agenda.empty()) {
      const Pair top = agenda.top();
      agenda.pop();
      Symbol& left = symbols[top.left];
      Symbol& right = symbols[top.right];
      // Stale: one side was merged into something else since the pair was queued.
      if (left.len == 0 || right.len == 0 || left.len + right.len != top.size) continue;
      left.len += right.len;
      right.len = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = top.left;
      maybe_add(left.prev, top.left);
      maybe_add(top.left, left.next);
    }

    for (int32_t i = 0; i >= 0; i = symbols[i].next) resegment(piece_of(symbols[i]), rev_merge, out);
    return out;
  }

  // As SentencePiece: the first piece loses its leading U+2581 (the dummy
  // prefix); with remove_extra_whitespaces, pieces keep losing it until some
  // text has been produced.
  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    bool at_start = vocab_.add_space_prefix || vocab_.remove_extra_whitespaces;
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t id = ids[i];
      check_id(id);
      const TokenType type = vocab_.types[id];
      if (type == TokenType::Control) continue;
      if (at_start) {
        if ((type == TokenType::Normal || type == TokenType::UserDefined) && vocab_.tokens[id].starts_with(kSpace)) {
          append_piece(out, std::string_view(vocab_.tokens[id]).substr(kSpace.size()));
          at_start = vocab_.remove_extra_whitespaces && out.empty();
          continue;
        }
        at_start = false;
        if (type == TokenType::Byte && vocab_.add_space_prefix && spells_space_symbol(ids.subspan(i))) {
          i += 2;  // the dummy prefix, spelled as the bytes of U+2581
          continue;
        }
      }
      append_token(out, id);
    }
    return out;
  }

  std::string token_to_piece(int32_t id) const override {
    check_id(id);
    std::string out;
    append_token(out, id);
    return out;
  }

 private:
  struct Symbol {
    uint32_t start;
    uint32_t len;  // 0 once merged into the symbol on its left
    int32_t prev;
    int32_t next;
    bool freeze;
  };
  struct Pair {
    float score;
    int32_t left;
    int32_t right;
    uint32_t size;
  };
  // Highest score first, then leftmost.
  struct PairLess {
    bool operator()(const Pair& a, const Pair& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };

  // SentencePiece's normalization with the identity rule: optional removal of
  // extra spaces, the dummy prefix, spaces -> U+2581.
  std::string normalize(std::string_view text) const {
    std::string out;
    if (vocab_.remove_extra_whitespaces) {
      while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    }
    if (text.empty()) return out;
    out.reserve(text.size() + text.size() / 2 + kSpace.size());
    if (vocab_.add_space_prefix) out.append(kSpace);
    bool prev_space = vocab_.remove_extra_whitespaces;
    for (const char c : text) {
      if (c == ' ') {
        if (!(vocab_.remove_extra_whitespaces && prev_space)) out.append(kSpace);
        prev_space = true;
      } else {
        out.push_back(c);
        prev_space = false;
      }
    }
    if (vocab_.remove_extra_whitespaces) {
      while (std::string_view(out).ends_with(kSpace)) out.resize(out.size() - kSpace.size());
    }
    return out;
  }

  void resegment(std::string_view piece,
                 const std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>>& rev_merge,
                 std::vector<int32_t>& out) const {
    const auto it = all_.find(piece);
    if (it != all_.end()) {
      if (vocab_.types[it->second] == TokenType::Unused) {
        const auto rm = rev_merge.find(piece);
        if (rm != rev_merge.end()) {
          resegment(rm->second.first, rev_merge, out);
          resegment(rm->second.second, rev_merge, out);
          return;
        }
      }
      out.push_back(it->second);
      return;
    }
    // Unknown piece: its bytes as byte tokens where the vocabulary has them.
    if (has_bytes_) {
      for (const char c : piece) {
        const int32_t b = byte_ids_[static_cast<uint8_t>(c)];
        if (b >= 0) {
          out.push_back(b);
        } else {
          push_unk(piece, out);
        }
      }
      return;
    }
    push_unk(piece, out);
  }

  void push_unk(std::string_view piece, std::vector<int32_t>& out) const {
    QF_CHECK(vocab_.unk_id >= 0, "cannot encode {}: not in the vocabulary, which has neither byte tokens nor <unk>",
             formats::quote(piece));
    out.push_back(vocab_.unk_id);
  }

  // Whether ids starts with the byte tokens E2 96 81 (U+2581 in UTF-8).
  bool spells_space_symbol(std::span<const int32_t> ids) const {
    if (ids.size() < 3) return false;
    for (size_t k = 0; k < 3; ++k) {
      const int32_t id = ids[k];
      if (id < 0 || id >= vocab_size() || vocab_.types[id] != TokenType::Byte ||
          parse_byte_piece(vocab_.tokens[id]) != static_cast<uint8_t>(kSpace[k])) {
        return false;
      }
    }
    return true;
  }

  static void append_piece(std::string& out, std::string_view piece) {
    size_t pos = 0;
    while (pos < piece.size()) {
      const size_t hit = piece.find(kSpace, pos);
      if (hit == std::string_view::npos) {
        out.append(piece.substr(pos));
        break;
      }
      out.append(piece.substr(pos, hit - pos));
      out.push_back(' ');
      pos = hit + kSpace.size();
    }
  }

  void append_token(std::string& out, int32_t id) const {
    switch (vocab_.types[id]) {
      case TokenType::Control:
        return;
      case TokenType::Unknown:
        out.append(kUnkSurface);
        return;
      case TokenType::Byte: {
        const int b = parse_byte_piece(vocab_.tokens[id]);
        if (b >= 0) {
          out.push_back(static_cast<char>(b));
          return;
        }
        break;
      }
      default:
        break;
    }
    append_piece(out, vocab_.tokens[id]);
  }

  std::unordered_map<std::string_view, int32_t> all_;
  std::unordered_map<std::string_view, int32_t> mergeable_;
  VerbatimMatcher user_defined_;
  std::array<int32_t, 256> byte_ids_{};
  bool has_bytes_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) { return std::make_unique<SpmTokenizer>(std::move(vocab)); }

}  // namespace qf::tokenizer::detail
