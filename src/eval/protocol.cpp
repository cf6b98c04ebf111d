#include "eval/protocol.h"

#include <algorithm>

#include "core/error.h"

namespace qf::eval {

Protocol parse_protocol(std::string_view name) {
  if (name == "lines") return Protocol::Lines;
  if (name == "chunks") return Protocol::Chunks;
  if (name == "strided") return Protocol::Strided;
  fail("unknown evaluation protocol '{}' (valid: chunks, strided, lines)", name);
}

std::string_view protocol_name(Protocol p) {
  switch (p) {
    case Protocol::Lines: return "lines";
    case Protocol::Chunks: return "chunks";
    case Protocol::Strided: return "strided";
  }
  return "?";
}

namespace {

std::vector<Window> line_windows(const tokenizer::Tokenizer& tok, std::string_view text, const ProtocolOptions& opt) {
  std::vector<Window> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    // Lines end at '\n' only: a '\r' before it (CRLF files) stays part of the
    // line and is scored, byte for byte what the file holds; the published
    // stories260K figure (about 5.25) was measured that way.
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    Window w;
    w.tokens = tok.encode(line, /*add_bos=*/true);
    if (static_cast<int64_t>(w.tokens.size()) > opt.n_ctx) w.tokens.resize(static_cast<size_t>(opt.n_ctx));
    if (w.tokens.size() < 2) continue;
    out.push_back(std::move(w));
    if (opt.max_windows > 0 && static_cast<int64_t>(out.size()) >= opt.max_windows) break;
  }
  return out;
}

std::vector<Window> chunk_windows(const tokenizer::Tokenizer& tok, std::string_view text, const ProtocolOptions& opt) {
  // llama-perplexity tokenizes with the vocabulary's BOS in front and cuts
  // that sequence, so without it every window would sit one token later than
  // llama.cpp's and score other tokens.
  const std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/tok.vocab().add_bos);
  const int64_t n = static_cast<int64_t>(ids.size());
  QF_CHECK(n >= opt.n_ctx, "the text has {} tokens, fewer than one {}-token chunk (use a longer text or --ctx)", n,
           opt.n_ctx);
  std::vector<Window> out;
  for (int64_t start = 0; start + opt.n_ctx <= n; start += opt.n_ctx) {
    Window w;
    w.tokens.assign(ids.begin() + start, ids.begin() + start + opt.n_ctx);
    if (tok.bos_id() >= 0) w.tokens[0] = tok.bos_id();
    w.first_scored = opt.n_ctx / 2;
    out.push_back(std::move(w));
    if (opt.max_windows > 0 && static_cast<int64_t>(out.size()) >= opt.max_windows) break;
  }
  return out;
}

std::vector<Window> strided_windows(const tokenizer::Tokenizer& tok, std::string_view text, const ProtocolOptions& opt) {
  const std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/tok.vocab().add_bos);
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t stride = opt.stride > 0 ? opt.stride : std::max<int64_t>(1, opt.n_ctx / 2);
  QF_CHECK(stride <= opt.n_ctx, "stride {} is longer than the window {}", stride, opt.n_ctx);
  std::vector<Window> out;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n; begin += stride) {
    const int64_t end = std::min(begin + opt.n_ctx, n);
    // Score the targets [prev_end, end); target t is predicted by logits[t - begin - 1].
    const int64_t first_target = std::max(prev_end, begin + 1);
    if (end - begin >= 2 && first_target < end) {
      Window w;
      w.tokens.assign(ids.begin() + begin, ids.begin() + end);
      w.first_scored = first_target - begin - 1;
      out.push_back(std::move(w));
    }
    prev_end = end;
    if (end == n) break;
    if (opt.max_windows > 0 && static_cast<int64_t>(out.size()) >= opt.max_windows) break;
  }
  return out;
}

}  // namespace

std::vector<Window> make_windows(const tokenizer::Tokenizer& tok, std::string_view text, const ProtocolOptions& opt) {
  QF_CHECK(opt.n_ctx >= 2, "context length must be at least 2, got {}", opt.n_ctx);
  std::vector<Window> out;
  switch (opt.protocol) {
    case Protocol::Lines: out = line_windows(tok, text, opt); break;
    case Protocol::Chunks: out = chunk_windows(tok, text, opt); break;
    case Protocol::Strided: out = strided_windows(tok, text, opt); break;
  }
  QF_CHECK(!out.empty(), "the text yields no token to score under protocol '{}'", protocol_name(opt.protocol));
  return out;
}

}  // namespace qf::eval
