#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "formats/strict_json.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace qf::tokenizer {

void Tokenizer::check_id(int32_t id) const {
  QF_CHECK(id >= 0 && id < vocab_size(), "token id {} is out of range (vocabulary of {} tokens)", id,
           vocab_size());
}

int parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (const char c : piece.substr(3, 2)) {
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

namespace detail {

void VerbatimMatcher::add(std::string_view piece, int32_t id) {
  if (piece.empty() || !pieces_.emplace(piece, id).second) return;
  first_byte_[static_cast<uint8_t>(piece[0])] = true;
  if (std::find(lengths_.begin(), lengths_.end(), piece.size()) == lengths_.end()) {
    lengths_.push_back(piece.size());
    std::sort(lengths_.begin(), lengths_.end(), std::greater<>());
  }
}

size_t VerbatimMatcher::match(std::string_view text, size_t pos, int32_t* id) const {
  if (pieces_.empty() || !first_byte_[static_cast<uint8_t>(text[pos])]) return 0;
  for (const size_t len : lengths_) {
    if (pos + len > text.size()) continue;
    const auto it = pieces_.find(text.substr(pos, len));
    if (it != pieces_.end()) {
      *id = it->second;
      return len;
    }
  }
  return 0;
}

std::unordered_map<std::string_view, int32_t> index_tokens(const Vocab& vocab) {
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(vocab.tokens.size());
  for (size_t i = 0; i < vocab.tokens.size(); ++i) ids.emplace(vocab.tokens[i], static_cast<int32_t>(i));
  return ids;
}

MergeTable build_merge_table(const Vocab& vocab, const std::unordered_map<std::string_view, int32_t>& ids) {
  MergeTable table;
  table.reserve(vocab.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& m = vocab.merges[rank];
    const size_t space = m.find(' ');
    QF_CHECK(space != std::string::npos && space > 0 && space + 1 < m.size() &&
                 m.find(' ', space + 1) == std::string::npos,
             "merge {} ({}) is not two tokens separated by one space", rank, formats::quote(m));
    const std::string_view left(m.data(), space);
    const std::string_view right(m.data() + space + 1, m.size() - space - 1);
    const auto l = ids.find(left);
    const auto r = ids.find(right);
    QF_CHECK(l != ids.end(), "merge {} ({}) refers to unknown token {}", rank, formats::quote(m),
             formats::quote(left));
    QF_CHECK(r != ids.end(), "merge {} ({}) refers to unknown token {}", rank, formats::quote(m),
             formats::quote(right));
    joined.assign(left).append(right);
    const auto j = ids.find(joined);
    QF_CHECK(j != ids.end(), "merge {} ({}) makes {}, which is not in the vocabulary", rank, formats::quote(m),
             formats::quote(joined));
    // A repeated merge keeps its first (best) rank.
    table.emplace(merge_key(l->second, r->second), MergeInfo{static_cast<int32_t>(rank), j->second});
  }
  return table;
}

std::array<int32_t, 256> byte_level_ids(const std::unordered_map<std::string_view, int32_t>& ids) {
  std::array<int32_t, 256> out{};
  std::string ch;
  for (int b = 0; b < 256; ++b) {
    ch.clear();
    unicode::append_utf8(ch, unicode::byte_to_unicode(static_cast<uint8_t>(b)));
    const auto it = ids.find(ch);
    // Control bytes may lack a token (SmolLM2); printable ASCII may not: a
    // vocabulary without those is no byte-level one.
    QF_CHECK(it != ids.end() || b < 0x21 || b > 0x7E,
             "byte-level vocabulary has no token for the printable byte 0x{:02X} ({})", b, formats::quote(ch));
    out[b] = it == ids.end() ? -1 : it->second;
  }
  return out;
}

}  // namespace detail

void validate_vocab(const Vocab& vocab) {
  const size_t n = vocab.tokens.size();
  QF_CHECK(n > 0, "the vocabulary is empty");
  QF_CHECK(n <= static_cast<size_t>(INT32_MAX), "the vocabulary has too many tokens ({})", n);
  QF_CHECK(vocab.types.size() == n, "the vocabulary has {} tokens but {} token types", n, vocab.types.size());
  for (size_t i = 0; i < n; ++i) {
    const auto t = static_cast<int32_t>(vocab.types[i]);
    QF_CHECK(t >= 1 && t <= 6, "token {} has an invalid type {}", i, t);
  }
  if (vocab.kind == VocabKind::SentencePiece) {
    QF_CHECK(vocab.scores.size() == n, "the vocabulary has {} tokens but {} scores", n, vocab.scores.size());
  } else {
    QF_CHECK(vocab.scores.empty() || vocab.scores.size() == n, "the vocabulary has {} tokens but {} scores", n,
             vocab.scores.size());
  }
  for (size_t i = 0; i < vocab.scores.size(); ++i) {
    QF_CHECK(std::isfinite(vocab.scores[i]), "token {} has a non-finite score", i);
  }
  const auto check_special = [&](int32_t id, const char* what) {
    QF_CHECK(id >= -1 && id < static_cast<int64_t>(n), "{} id {} is out of range (vocabulary of {} tokens)", what,
             id, n);
  };
  check_special(vocab.bos_id, "BOS");
  check_special(vocab.eos_id, "EOS");
  check_special(vocab.unk_id, "UNK");
  check_special(vocab.pad_id, "PAD");
  if (vocab.kind == VocabKind::ByteLevelBPE) {
    const auto ids = detail::index_tokens(vocab);
    detail::byte_level_ids(ids);
    detail::build_merge_table(vocab, ids);
  } else {
    for (size_t i = 0; i < n; ++i) {
      if (vocab.types[i] == TokenType::Byte) {
        QF_CHECK(parse_byte_piece(vocab.tokens[i]) >= 0, "byte token {} is {}, not of the form <0xNN>", i,
                 formats::quote(vocab.tokens[i]));
      }
    }
  }
}

std::unique_ptr<Tokenizer> make_tokenizer(Vocab vocab) {
  validate_vocab(vocab);
  switch (vocab.kind) {
    case VocabKind::SentencePiece:
      return detail::make_spm_tokenizer(std::move(vocab));
    case VocabKind::ByteLevelBPE:
      return detail::make_bpe_tokenizer(std::move(vocab));
  }
  fail("unknown vocabulary kind {}", static_cast<int>(vocab.kind));
}

}  // namespace qf::tokenizer
