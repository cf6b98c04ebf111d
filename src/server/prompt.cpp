#include "server/prompt.h"

#include <algorithm>
#include <string>

namespace qf::server {

std::vector<int32_t> encode_with_special_tokens(const tokenizer::Tokenizer& tok, std::string_view text, bool add_bos) {
  const tokenizer::Vocab& v = tok.vocab();
  std::vector<int32_t> specials;  // control tokens that can appear in text, longest first
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.types[i] == tokenizer::TokenType::Control && v.tokens[i].size() > 1)
      specials.push_back(static_cast<int32_t>(i));
  std::sort(specials.begin(), specials.end(),
            [&](int32_t a, int32_t b) { return v.tokens[size_t(a)].size() > v.tokens[size_t(b)].size(); });
  std::vector<int32_t> out;
  if (add_bos && v.bos_id >= 0) out.push_back(v.bos_id);
  size_t pos = 0;
  while (pos <= text.size()) {
    // The earliest special token from `pos`.
    size_t best = std::string_view::npos;
    int32_t best_id = -1;
    for (int32_t id : specials) {
      const size_t at = text.find(v.tokens[size_t(id)], pos);
      if (at < best) {
        best = at;
        best_id = id;
      }
    }
    const std::string_view chunk = text.substr(pos, best == std::string_view::npos ? text.size() - pos : best - pos);
    if (!chunk.empty()) {
      const std::vector<int32_t> ids = tok.encode(chunk, false);
      out.insert(out.end(), ids.begin(), ids.end());
    }
    if (best == std::string_view::npos) break;
    out.push_back(best_id);
    pos = best + v.tokens[size_t(best_id)].size();
  }
  return out;
}

std::vector<int32_t> end_marker_tokens(const tokenizer::Tokenizer& tok, ChatFormat format) {
  std::vector<int32_t> ids;
  const tokenizer::Vocab& v = tok.vocab();
  for (const std::string& m : chat_end_markers(format)) {
    for (size_t i = 0; i < v.tokens.size(); ++i)
      if (v.tokens[i] == m) ids.push_back(static_cast<int32_t>(i));
  }
  return ids;
}

}  // namespace qf::server
