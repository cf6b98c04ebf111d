// Tokenizing rendered chat prompts: the template's markers (<|im_start|>,
// <|eot_id|>, ...) are control tokens, which Tokenizer::encode never produces
// from text, so they are cut out of the text and inserted by id.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "server/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace qf::server {

// encode(text) where every occurrence of a control token's piece (longest
// first) becomes that token's id. BOS first when add_bos.
std::vector<int32_t> encode_with_special_tokens(const tokenizer::Tokenizer& tok, std::string_view text, bool add_bos);

// Ids of the format's end-of-turn markers that are single tokens of the vocabulary.
std::vector<int32_t> end_marker_tokens(const tokenizer::Tokenizer& tok, ChatFormat format);

}  // namespace qf::server
