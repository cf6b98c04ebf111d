#include "server/request.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/text_stream.h"

namespace qf::server {
namespace {

using nlohmann::json;

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a float";
    default: return "an integer";
  }
}

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param, "invalid_value");
}

[[noreturn]] void wrong_type(const std::string& param, const char* want, const json& v) {
  throw ApiError(400, fmt::format("'{}' must be {}, got {}", param, want, type_name(v)), param, "invalid_type");
}

// The member, or nullptr when absent or null (OpenAI treats null as "default").
const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& v, const char* name, double lo, double hi) {
  if (!v.is_number()) wrong_type(name, "a number", v);
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, v.dump()));
  return x;
}

int64_t integer(const json& v, const char* name, int64_t lo, int64_t hi) {
  // 3.0 is accepted as 3 (JSON does not tell them apart for most clients); 3.5 is not.
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::floor(d) != d || !std::isfinite(d)) wrong_type(name, "an integer", v);
    // double(INT64_MAX) rounds up to 2^63, which no int64_t holds: the
    // bound must be exclusive there, or the cast below is undefined.
    const bool above = hi == std::numeric_limits<int64_t>::max() ? d >= 0x1p63 : d > static_cast<double>(hi);
    if (d < static_cast<double>(lo) || above)
      bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, v.dump()));
    return static_cast<int64_t>(d);
  }
  if (!v.is_number_integer()) wrong_type(name, "an integer", v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, v.dump()));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
  return x;
}

std::string text_content(const json& v, const std::string& name) {
  if (v.is_string()) return v.get<std::string>();
  // OpenAI's content parts: [{"type": "text", "text": "..."}]; only text here.
  if (v.is_array()) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      const json& part = v[i];
      const std::string pname = fmt::format("{}[{}]", name, i);
      if (!part.is_object()) wrong_type(pname, "an object", part);
      const json* type = field(part, "type");
      if (!type || !type->is_string() || *type != "text")
        bad(pname + ".type", "only content parts of type 'text' are supported");
      const json* text = field(part, "text");
      if (!text || !text->is_string()) wrong_type(pname + ".text", "a string", text ? *text : json());
      out += text->get<std::string>();
    }
    return out;
  }
  wrong_type(name, "a string or an array of text parts", v);
}

}  // namespace

CompletionRequest parse_completion_request(std::string_view body, bool chat, const std::string& served_model) {
  if (!valid_utf8(body)) throw ApiError(400, "the request body is not valid UTF-8", "", "invalid_encoding");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    // nlohmann's message names the byte offset and what was expected.
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()), "", "invalid_json");
  }
  if (!j.is_object()) throw ApiError(400, fmt::format("the request body must be a JSON object, got {}", type_name(j)));

  CompletionRequest r;
  r.chat = chat;
  if (const json* v = field(j, "model")) {
    if (!v->is_string()) wrong_type("model", "a string", *v);
    r.model = v->get<std::string>();
    if (r.model != served_model)
      throw ApiError(404, fmt::format("The model '{}' does not exist; this server runs '{}'", r.model, served_model),
                     "model", "model_not_found");
  }
  if (chat) {
    const json* m = field(j, "messages");
    if (!m) bad("messages", "'messages' is required");
    if (!m->is_array()) wrong_type("messages", "an array", *m);
    if (m->empty()) bad("messages", "'messages' must hold at least one message");
    for (size_t i = 0; i < m->size(); ++i) {
      const json& msg = (*m)[i];
      const std::string name = fmt::format("messages[{}]", i);
      if (!msg.is_object()) wrong_type(name, "an object", msg);
      const json* role = field(msg, "role");
      if (!role || !role->is_string()) wrong_type(name + ".role", "a string", role ? *role : json());
      const std::string rs = role->get<std::string>();
      if (rs != "system" && rs != "user" && rs != "assistant" && rs != "developer")
        bad(name + ".role", fmt::format("'{}' is not a role ('system', 'user' or 'assistant')", rs));
      const json* content = field(msg, "content");
      if (!content) bad(name + ".content", fmt::format("'{}.content' is required", name));
      r.messages.push_back({rs == "developer" ? "system" : rs, text_content(*content, name + ".content")});
    }
  } else {
    const json* p = field(j, "prompt");
    if (!p) bad("prompt", "'prompt' is required");
    if (p->is_string()) {
      r.prompt = p->get<std::string>();
    } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      r.prompt = (*p)[0].get<std::string>();
    } else if (p->is_array() && p->size() != 1) {
      bad("prompt", "only one prompt per request is supported");
    } else {
      wrong_type("prompt", "a string", *p);
    }
  }
  if (const json* v = field(j, "stream")) {
    if (!v->is_boolean()) wrong_type("stream", "a boolean", *v);
    r.stream = v->get<bool>();
  }
  // Chat's newer spelling first; both are accepted on both endpoints.
  for (const char* name : {"max_completion_tokens", "max_tokens"}) {
    if (const json* v = field(j, name)) {
      r.max_tokens = integer(*v, name, 1, std::numeric_limits<int32_t>::max());
      break;
    }
  }
  if (const json* v = field(j, "temperature")) r.temperature = static_cast<float>(number(*v, "temperature", 0.0, 2.0));
  if (const json* v = field(j, "top_p")) {
    r.top_p = static_cast<float>(number(*v, "top_p", 0.0, 1.0));
    if (r.top_p <= 0.0f) bad("top_p", "'top_p' must be greater than 0");
  }
  if (const json* v = field(j, "top_k")) r.top_k = static_cast<int>(integer(*v, "top_k", 0, 1 << 30));
  if (const json* v = field(j, "seed")) {
    r.seed = static_cast<uint64_t>(
        integer(*v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  }
  if (const json* v = field(j, "n")) {
    if (integer(*v, "n", 1, 128) != 1) bad("n", "only n = 1 is supported");
  }
  if (const json* v = field(j, "stop")) {
    if (v->is_string()) {
      r.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (static_cast<int64_t>(v->size()) > kMaxStopStrings)
        bad("stop", fmt::format("at most {} stop strings are allowed, got {}", kMaxStopStrings, v->size()));
      for (size_t i = 0; i < v->size(); ++i) {
        if (!(*v)[i].is_string()) wrong_type(fmt::format("stop[{}]", i), "a string", (*v)[i]);
        r.stop.push_back((*v)[i].get<std::string>());
      }
    } else {
      wrong_type("stop", "a string or an array of strings", *v);
    }
    for (const std::string& s : r.stop)
      if (s.empty()) bad("stop", "stop strings must not be empty");
  }
  if (chat) {
    bool want = false;
    if (const json* v = field(j, "logprobs")) {
      if (!v->is_boolean()) wrong_type("logprobs", "a boolean", *v);
      want = v->get<bool>();
    }
    if (const json* v = field(j, "top_logprobs")) {
      const int n = static_cast<int>(integer(*v, "top_logprobs", 0, 20));
      if (!want) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
      r.logprobs = n;
    } else if (want) {
      r.logprobs = 0;
    }
  } else if (const json* v = field(j, "logprobs")) {
    r.logprobs = static_cast<int>(integer(*v, "logprobs", 0, 5));
  }
  return r;
}

int64_t check_context(const CompletionRequest& r, int64_t prompt_tokens, int64_t context) {
  if (prompt_tokens > context)
    throw ApiError(400,
                   fmt::format("This model's maximum context length is {} tokens, but the prompt has {} tokens",
                               context, prompt_tokens),
                   r.chat ? "messages" : "prompt", "context_length_exceeded");
  // The last sampled token is never fed back, so a full prompt still yields one token.
  const int64_t room = context - prompt_tokens + 1;
  if (r.max_tokens && *r.max_tokens > room)
    throw ApiError(400,
                   fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                               "({} in the prompt, {} for the completion)",
                               context, prompt_tokens + *r.max_tokens, prompt_tokens, *r.max_tokens),
                   "max_tokens", "context_length_exceeded");
  if (r.max_tokens) return *r.max_tokens;
  return r.chat ? room : std::min<int64_t>(16, room);
}

}  // namespace qf::server
