// The JSON shapes of OpenAI's completions and chat completions API, whole and
// as streamed chunks, and their Server-Sent Events framing. Plain functions
// of plain data: the HTTP layer only sends what they return.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/engine.h"

namespace qf::server {

// What every response object of one request shares.
struct ResponseMeta {
  std::string id;  // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  bool chat = false;
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// Whole responses. `logprobs`: one entry per generated token, null in the
// JSON when `with_logprobs` is false.
nlohmann::json completion_response(const ResponseMeta& m, const std::string& text,
                                   const std::vector<TokenLogprob>& logprobs, bool with_logprobs,
                                   const std::string& finish_reason, Usage usage);

// One streamed chunk: `text` (a delta), or the closing chunk when
// `finish_reason` is non-empty. Chat's first chunk carries the role
// (`first`). `usage`, when given, is attached (the closing chunk).
nlohmann::json stream_chunk(const ResponseMeta& m, const std::string& text,
                            const std::vector<TokenLogprob>& logprobs, bool with_logprobs,
                            const std::string& finish_reason, bool first, const Usage* usage = nullptr);

// GET /v1/models
nlohmann::json models_response(const std::string& model, int64_t created);

// JSON text with ill-formed UTF-8 replaced (dump() would throw on it).
std::string dump_json(const nlohmann::json& j);

// "data: <json>\n\n", and the closing "data: [DONE]\n\n".
std::string sse_event(const nlohmann::json& j);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace qf::server
