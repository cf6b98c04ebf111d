#include "server/openai_json.h"

namespace qf::server {
namespace {

using nlohmann::json;

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

// Completions: {tokens, token_logprobs, top_logprobs: [{token: lp}], text_offset}.
json completion_logprobs(const std::vector<TokenLogprob>& lps, size_t text_offset) {
  json tokens = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
  for (const TokenLogprob& lp : lps) {
    tokens.push_back(lp.token);
    values.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [t, v] : lp.top) top[t] = v;
    tops.push_back(top);
    offsets.push_back(text_offset);
    text_offset += lp.token.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

// Chat: {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
json chat_logprobs(const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (const TokenLogprob& lp : lps) {
    json top = json::array();
    for (const auto& [t, v] : lp.top) top.push_back({{"token", t}, {"logprob", v}, {"bytes", bytes_of(t)}});
    content.push_back({{"token", lp.token}, {"logprob", lp.logprob}, {"bytes", bytes_of(lp.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json usage_json(Usage u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json reason_json(const std::string& r) { return r.empty() ? json(nullptr) : json(r); }

}  // namespace

json completion_response(const ResponseMeta& m, const std::string& text, const std::vector<TokenLogprob>& logprobs,
                         bool with_logprobs, const std::string& finish_reason, Usage usage) {
  json choice = {{"index", 0}, {"finish_reason", reason_json(finish_reason)}};
  if (m.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
    choice["logprobs"] = with_logprobs ? chat_logprobs(logprobs) : json(nullptr);
  } else {
    choice["text"] = text;
    choice["logprobs"] = with_logprobs ? completion_logprobs(logprobs, 0) : json(nullptr);
  }
  return {{"id", m.id},
          {"object", m.chat ? "chat.completion" : "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(usage)}};
}

json stream_chunk(const ResponseMeta& m, const std::string& text, const std::vector<TokenLogprob>& logprobs,
                  bool with_logprobs, const std::string& finish_reason, bool first, const Usage* usage) {
  json choice = {{"index", 0}, {"finish_reason", reason_json(finish_reason)}};
  if (m.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (finish_reason.empty() || !text.empty()) delta["content"] = text;
    choice["delta"] = delta;
    choice["logprobs"] = with_logprobs && !logprobs.empty() ? chat_logprobs(logprobs) : json(nullptr);
  } else {
    choice["text"] = text;
    choice["logprobs"] = with_logprobs && !logprobs.empty() ? completion_logprobs(logprobs, 0) : json(nullptr);
  }
  json chunk = {{"id", m.id},
                {"object", m.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", m.created},
                {"model", m.model},
                {"choices", json::array({choice})}};
  if (usage) chunk["usage"] = usage_json(*usage);
  return chunk;
}

json models_response(const std::string& model, int64_t created) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "qforge"}}})}};
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

}  // namespace qf::server
