// Parsing and validation of /v1/completions and /v1/chat/completions bodies.
// Anything a client can get wrong becomes an ApiError (status 400 with the
// offending parameter named, 404 for an unknown model), never an exception of
// another type: malformed JSON, invalid UTF-8, wrong types, out-of-range
// values. Checks that need the model (prompt length against the context) are
// done by the server once the prompt is tokenized (check_context).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qf::server {

struct ChatMessage {
  std::string role;  // system, user, assistant
  std::string content;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;  // empty when the client sent none
  std::string prompt;                 // /v1/completions
  std::vector<ChatMessage> messages;  // /v1/chat/completions
  bool stream = false;
  std::optional<int64_t> max_tokens;  // unset: completions 16 (OpenAI's default), chat: the rest of the context
  float temperature = 1.0f;           // OpenAI's default
  float top_p = 1.0f;
  int top_k = 0;  // not OpenAI's, but llama.cpp's server and vLLM take it
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  // Log-probabilities: -1 none; otherwise the number of alternatives per
  // token (completions: logprobs 0..5; chat: logprobs true + top_logprobs 0..20).
  int logprobs = -1;
};

inline constexpr int64_t kMaxStopStrings = 4;  // OpenAI's limit

// Parses a request body. `served_model` is the one model this server runs:
// a different "model" is a 404 model_not_found. Throws ApiError.
CompletionRequest parse_completion_request(std::string_view body, bool chat, const std::string& served_model);

// max_tokens resolved against the context: throws ApiError 400
// (context_length_exceeded) when the prompt alone does not fit, or prompt +
// an explicit max_tokens exceeds `context`. Returns the token budget.
int64_t check_context(const CompletionRequest& r, int64_t prompt_tokens, int64_t context);

}  // namespace qf::server
