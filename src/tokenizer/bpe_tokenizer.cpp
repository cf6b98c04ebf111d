// GPT-2 byte-level BPE (see tokenizer.h).
#include <array>
#include <mutex>
#include <queue>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace qf::tokenizer::detail {
namespace {

// Words longer than this are not cached (they are rare and would bloat the cache).
constexpr size_t kMaxCachedWord = 256;
constexpr size_t kMaxCacheEntries = size_t{1} << 16;

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(Vocab v) : Tokenizer(std::move(v)) {
    const auto ids = index_tokens(vocab_);
    byte_ids_ = byte_level_ids(ids);
    merges_ = build_merge_table(vocab_, ids);
    for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
      if (vocab_.types[i] == TokenType::UserDefined) user_defined_.add(vocab_.tokens[i], static_cast<int32_t>(i));
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> out;
    if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
    if (text.empty()) return out;
    std::string prefixed;
    if (vocab_.add_space_prefix && text.front() != ' ') {
      prefixed.reserve(text.size() + 1);
      prefixed.append(" ").append(text);
      text = prefixed;
    }
    if (user_defined_.empty()) {
      encode_segment(text, out);
      return out;
    }
    size_t seg_start = 0;
    for (size_t pos = 0; pos < text.size();) {
      int32_t id = -1;
      const size_t len = user_defined_.match(text, pos, &id);
      if (len == 0) {
        ++pos;
        continue;
      }
      encode_segment(text.substr(seg_start, pos - seg_start), out);
      out.push_back(id);
      pos += len;
      seg_start = pos;
    }
    encode_segment(text.substr(seg_start), out);
    return out;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    for (const int32_t id : ids) {
      check_id(id);
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
  void encode_segment(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    for (const std::string_view word : unicode::gpt2_pretokenize(text)) encode_word(word, out);
  }

  void encode_word(std::string_view word, std::vector<int32_t>& out) const {
    const bool cacheable = word.size() <= kMaxCachedWord;
    if (cacheable) {
      std::lock_guard lock(cache_mutex_);
      const auto it = cache_.find(std::string(word));
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids = bpe(word);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::lock_guard lock(cache_mutex_);
      if (cache_.size() >= kMaxCacheEntries) cache_.clear();
      cache_.emplace(std::string(word), std::move(ids));
    }
  }

  // Ranked merges over the word's byte tokens: always the lowest-ranked
  // adjacent pair first, leftmost on ties.
  std::vector<int32_t> bpe(std::string_view word) const {
    struct Symbol {
      int32_t id;  // -1 once merged into the symbol on its left
      int32_t prev;
      int32_t next;
    };
    struct Candidate {
      int32_t rank;
      int32_t left;
      int32_t left_id;
      int32_t right_id;
      bool operator>(const Candidate& o) const { return rank > o.rank || (rank == o.rank && left > o.left); }
    };
    // A byte without a token becomes the unknown token, or is dropped when
    // there is none, as Hugging Face tokenizers' BPE does.
    std::vector<int32_t> start;
    start.reserve(word.size());
    for (const char c : word) {
      const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
      if (id >= 0 || vocab_.unk_id >= 0) start.push_back(id >= 0 ? id : vocab_.unk_id);
    }
    const auto n = static_cast<int32_t>(start.size());
    std::vector<Symbol> sym(start.size());
    if (n == 0) return {};
    for (int32_t i = 0; i < n; ++i) sym[i] = Symbol{start[static_cast<size_t>(i)], i - 1, i + 1 < n ? i + 1 : -1};
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    const auto consider = [&](int32_t left) {
      if (left < 0 || sym[left].next < 0) return;
      const int32_t right = sym[left].next;
      const auto it = merges_.find(merge_key(sym[left].id, sym[right].id));
      if (it != merges_.end()) heap.push(Candidate{it->second.rank, left, sym[left].id, sym[right].id});
    };
    for (int32_t i = 0; i + 1 < n; ++i) consider(i);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& left = sym[c.left];
      if (left.id != c.left_id || left.next < 0) continue;  // stale
      Symbol& right = sym[left.next];
      if (right.id != c.right_id) continue;  // stale
      left.id = merges_.at(merge_key(c.left_id, c.right_id)).merged;
      right.id = -1;
      left.next = right.next;
      if (left.next >= 0) sym[left.next].prev = c.left;
      consider(left.prev);
      consider(c.left);
    }
    std::vector<int32_t> ids;
    for (int32_t i = 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
    return ids;
  }

  void append_token(std::string& out, int32_t id) const {
    const TokenType type = vocab_.types[id];
    if (type == TokenType::Control) return;
    const std::string& piece = vocab_.tokens[id];
    if (type == TokenType::UserDefined) {
      out.append(piece);
      return;
    }
    for (size_t pos = 0; pos < piece.size();) {
      uint32_t cp = 0;
      const size_t len = unicode::decode_utf8(piece, pos, cp);
      const int b = cp == unicode::kInvalid ? -1 : unicode::unicode_to_byte(cp);
      if (b >= 0) {
        out.push_back(static_cast<char>(b));
      } else {
        out.append(piece, pos, len);
      }
      pos += len;
    }
  }

  std::array<int32_t, 256> byte_ids_{};
  MergeTable merges_;
  VerbatimMatcher user_defined_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab) { return std::make_unique<BpeTokenizer>(std::move(vocab)); }

}  // namespace qf::tokenizer::detail
