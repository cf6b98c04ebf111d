// Internals shared by the tokenizer implementations (not part of the API).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace qf::tokenizer::detail {

// U+2581, SentencePiece's visible space (also in HF Metaspace tokenizers).
inline constexpr std::string_view kSpace = "\xE2\x96\x81";

// Longest-match lookup of a fixed set of strings (user-defined tokens) at a
// position of a text.
class VerbatimMatcher {
 public:
  void add(std::string_view piece, int32_t id);
  bool empty() const { return pieces_.empty(); }
  // Length of the longest piece that starts at text[pos] (0 if none); its id in *id.
  size_t match(std::string_view text, size_t pos, int32_t* id) const;

 private:
  std::unordered_map<std::string_view, int32_t> pieces_;
  std::vector<size_t> lengths_;  // distinct piece lengths, longest first
  std::array<bool, 256> first_byte_{};
};

// Merge table of a byte-level BPE vocabulary: (left id, right id) -> rank and
// merged id. Throws qf::Error for malformed merges or unknown tokens.
struct MergeInfo {
  int32_t rank;
  int32_t merged;
};
using MergeTable = std::unordered_map<uint64_t, MergeInfo>;
inline uint64_t merge_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
// First id of each token text.
std::unordered_map<std::string_view, int32_t> index_tokens(const Vocab& vocab);
MergeTable build_merge_table(const Vocab& vocab, const std::unordered_map<std::string_view, int32_t>& ids);
// Id of the token of each byte's GPT-2 character, or -1 where the vocabulary
// has none (SmolLM2's 49152 tokens lack a few control bytes); throws when a
// printable ASCII byte has none.
std::array<int32_t, 256> byte_level_ids(const std::unordered_map<std::string_view, int32_t>& ids);

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab);

}  // namespace qf::tokenizer::detail
