// How a text becomes scored predictions: the three perplexity protocols
// people compare numbers under.
//
//   lines    each non-empty line on its own: BOS + the line (with the
//            tokenizer's dummy-prefix space), every next token scored with full
//            context; a line longer than n_ctx tokens is cut to its first
//            n_ctx (as a model trained on n_ctx-token sequences is scored).
//   chunks   llama.cpp's `perplexity`: the whole text tokenized once (BOS first
//            when the vocabulary adds one, as llama-perplexity does), cut into
//            non-overlapping windows of n_ctx tokens whose first token is
//            replaced by BOS; only the second half of each window is scored,
//            so every scored token has at least n_ctx/2 tokens of context.
//   strided  Hugging Face's sliding window ("Perplexity of fixed-length
//            models"): windows of n_ctx tokens starting every `stride` tokens;
//            each window scores only the tokens the previous one did not.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace qf::eval {

enum class Protocol { Lines, Chunks, Strided };

Protocol parse_protocol(std::string_view name);  // "lines" | "chunks" | "strided"
std::string_view protocol_name(Protocol p);

struct ProtocolOptions {
  Protocol protocol = Protocol::Chunks;
  int64_t n_ctx = 512;      // window length (chunks, strided); lines are cut to their first n_ctx tokens
  int64_t stride = 0;       // strided: 0 means n_ctx / 2
  int64_t max_windows = 0;  // stop after this many windows/lines; 0 = all
};

// One forward pass worth of tokens. logits[j] (the prediction after tokens[j])
// is scored against tokens[j + 1] for j in [first_scored, tokens.size() - 1).
struct Window {
  std::vector<int32_t> tokens;
  int64_t first_scored = 0;
};

// Cuts `text` into windows. Throws qf::Error when the text yields no scored
// token (empty file, or fewer than n_ctx tokens for `chunks`), naming what
// was needed.
std::vector<Window> make_windows(const tokenizer::Tokenizer& tok, std::string_view text, const ProtocolOptions& opt);

}  // namespace qf::eval
