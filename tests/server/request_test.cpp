// Request validation (every bad input is an ApiError with its status, param
// and code), context checks, chat template detection and rendering, the
// OpenAI JSON shapes and SSE framing, and the Prometheus rendering of Metrics.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/chat_template.h"
#include "server/metrics.h"
#include "server/openai_json.h"
#include "server/request.h"

namespace qf::server {
namespace {

CompletionRequest parse(const std::string& body, bool chat = false) {
  return parse_completion_request(body, chat, "m");
}

// The ApiError a body gets.
ApiError error_of(const std::string& body, bool chat = false) {
  try {
    parse(body, chat);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << body;
  return ApiError(0, "");
}

TEST(Request, ParsesEveryField) {
  const CompletionRequest r = parse(
      R"({"model": "m", "prompt": "hi", "stream": true, "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
          "top_k": 40, "seed": 11, "stop": ["a", "b"], "logprobs": 2, "n": 1, "unknown_field": {}})");
  EXPECT_EQ(r.prompt, "hi");
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(*r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.top_p, 0.9f);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_EQ(*r.seed, 11u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.logprobs, 2);
  const CompletionRequest d = parse(R"({"prompt": ["one"], "max_tokens": null, "stop": "x"})");
  EXPECT_FALSE(d.max_tokens);
  EXPECT_FLOAT_EQ(d.temperature, 1.0f);
  EXPECT_EQ(d.stop, std::vector<std::string>{"x"});
  const CompletionRequest c = parse(
      R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "u"}]}],
          "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 5})",
      true);
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(c.messages[1].content, "u");
  EXPECT_EQ(c.logprobs, 3);
  EXPECT_EQ(*c.max_tokens, 5);
}

TEST(Request, BadInputIsAnApiErrorNamingTheParameter) {
  struct Case {
    std::string body;
    bool chat;
    int status;
    std::string param, code;
  };
  const std::vector<Case> cases = {
      {"{\"prompt\": ", false, 400, "", "invalid_json"},
      {"not json", false, 400, "", "invalid_json"},
      {"[]", false, 400, "", ""},
      {"{\"prompt\": \"a\xFF\"}", false, 400, "", "invalid_encoding"},
      {R"({})", false, 400, "prompt", "invalid_value"},
      {R"({"prompt": 1})", false, 400, "prompt", "invalid_type"},
      {R"({"prompt": ["a", "b"]})", false, 400, "prompt", "invalid_value"},
      {R"({"prompt": "a", "model": "other"})", false, 404, "model", "model_not_found"},
      {R"({"prompt": "a", "model": 3})", false, 400, "model", "invalid_type"},
      {R"({"prompt": "a", "max_tokens": 0})", false, 400, "max_tokens", "invalid_value"},
      {R"({"prompt": "a", "max_tokens": -1})", false, 400, "max_tokens", "invalid_value"},
      {R"({"prompt": "a", "max_tokens": 1e30})", false, 400, "max_tokens", "invalid_value"},
      {R"({"prompt": "a", "max_tokens": 99999999999999999999})", false, 400, "max_tokens", "invalid_value"},
      {R"({"prompt": "a", "max_tokens": 2.5})", false, 400, "max_tokens", "invalid_type"},
      {R"({"prompt": "a", "max_tokens": true})", false, 400, "max_tokens", "invalid_type"},
      {R"({"prompt": "a", "temperature": "1"})", false, 400, "temperature", "invalid_type"},
      {R"({"prompt": "a", "temperature": 3})", false, 400, "temperature", "invalid_value"},
      {R"({"prompt": "a", "top_p": 0})", false, 400, "top_p", "invalid_value"},
      {R"({"prompt": "a", "top_k": -1})", false, 400, "top_k", "invalid_value"},
      {R"({"prompt": "a", "seed": "x"})", false, 400, "seed", "invalid_type"},
      // 2^63 as a float: just past int64_t, where double(INT64_MAX) rounds to.
      {R"({"prompt": "a", "seed": 9223372036854775808.0})", false, 400, "seed", "invalid_value"},
      {R"({"prompt": "a", "seed": 1e19})", false, 400, "seed", "invalid_value"},
      {R"({"prompt": "a", "stream": "yes"})", false, 400, "stream", "invalid_type"},
      {R"({"prompt": "a", "stop": 5})", false, 400, "stop", "invalid_type"},
      {R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})", false, 400, "stop", "invalid_value"},
      {R"({"prompt": "a", "stop": [""]})", false, 400, "stop", "invalid_value"},
      {R"({"prompt": "a", "n": 2})", false, 400, "n", "invalid_value"},
      {R"({"prompt": "a", "logprobs": 9})", false, 400, "logprobs", "invalid_value"},
      {R"({"messages": []})", true, 400, "messages", "invalid_value"},
      {R"({"messages": {}})", true, 400, "messages", "invalid_type"},
      {R"({"messages": [{"role": "user"}]})", true, 400, "messages[0].content", "invalid_value"},
      {R"({"messages": [{"role": "x", "content": "c"}]})", true, 400, "messages[0].role", "invalid_value"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", true, 400,
       "messages[0].content[0].type", "invalid_value"},
      {R"({"messages": [{"role": "user", "content": "c"}], "logprobs": 1})", true, 400, "logprobs", "invalid_type"},
      {R"({"messages": [{"role": "user", "content": "c"}], "top_logprobs": 2})", true, 400, "top_logprobs",
       "invalid_value"},
  };
  for (const Case& c : cases) {
    const ApiError e = error_of(c.body, c.chat);
    EXPECT_EQ(e.status, c.status) << c.body << ": " << e.what();
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.what();
    EXPECT_EQ(e.code, c.code) << c.body << ": " << e.what();
    EXPECT_FALSE(std::string(e.what()).empty());
  }
}

TEST(Request, ContextChecks) {
  CompletionRequest r = parse(R"({"prompt": "a"})");
  EXPECT_EQ(check_context(r, 10, 100), 16);  // OpenAI's default for completions
  EXPECT_EQ(check_context(r, 95, 100), 6);   // at most what fits
  r.max_tokens = 91;
  EXPECT_EQ(check_context(r, 10, 100), 91);
  r.max_tokens = 92;
  EXPECT_THROW(check_context(r, 10, 100), ApiError);
  EXPECT_THROW(check_context(r, 101, 100), ApiError);
  CompletionRequest c = parse(R"({"messages": [{"role": "user", "content": "x"}]})", true);
  EXPECT_EQ(check_context(c, 10, 100), 91);  // chat: the rest of the context
  try {
    check_context(c, 200, 100);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.code, "context_length_exceeded");
    EXPECT_EQ(e.param, "messages");
  }
}

TEST(ErrorBody, HasOpenAIsShape) {
  const nlohmann::json j = error_body(ApiError(401, "bad key", "", "invalid_api_key"));
  EXPECT_EQ(j["error"]["message"], "bad key");
  EXPECT_EQ(j["error"]["type"], "authentication_error");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_EQ(j["error"]["code"], "invalid_api_key");
}

TEST(ChatTemplate, DetectsFamiliesAndRenders) {
  EXPECT_EQ(detect_chat_format("{% for m in messages %}<|im_start|>{{ m.role }}..."), ChatFormat::ChatML);
  EXPECT_EQ(detect_chat_format("<|start_header_id|>"), ChatFormat::Llama3);
  EXPECT_EQ(detect_chat_format("{{ bos_token }}[INST] {{ m }} [/INST]"), ChatFormat::Llama2);
  EXPECT_EQ(detect_chat_format("<start_of_turn>"), ChatFormat::Gemma);
  EXPECT_EQ(detect_chat_format("<|user|>\n"), ChatFormat::Zephyr);
  EXPECT_EQ(detect_chat_format("{{ messages }}"), ChatFormat::Plain);
  const std::vector<ChatMessage> m = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}, {"user", "V"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, m),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            "<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(ChatFormat::Llama2, m), "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A [INST] V [/INST]");
  EXPECT_EQ(apply_chat_template(ChatFormat::Gemma, m),
            "<start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n<start_of_turn>user\nV"
            "<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(apply_chat_template(ChatFormat::Plain, m), "System: S\nUser: U\nAssistant: A\nUser: V\nAssistant:");
}

TEST(OpenAIJson, ResponsesChunksAndSse) {
  const ResponseMeta meta{"cmpl-1", 5, "m", false};
  const nlohmann::json whole = completion_response(meta, "hey", {{"he", -0.5f, {{"he", -0.5f}}}, {"y", -1.0f, {}}}, true,
                                                   "length", {3, 2});
  EXPECT_EQ(whole["object"], "text_completion");
  EXPECT_EQ(whole["choices"][0]["text"], "hey");
  EXPECT_EQ(whole["choices"][0]["logprobs"]["text_offset"], nlohmann::json({0, 2}));
  EXPECT_EQ(whole["usage"]["total_tokens"], 5);
  const ResponseMeta chat{"chatcmpl-1", 5, "m", true};
  const nlohmann::json first = stream_chunk(chat, "a", {}, false, "", true);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const Usage u{1, 1};
  const nlohmann::json last = stream_chunk(chat, "", {}, false, "stop", false, &u);
  EXPECT_EQ(last["choices"][0]["delta"], nlohmann::json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  const std::string ev = sse_event({{"a", "b\nc"}});
  EXPECT_EQ(ev, "data: {\"a\":\"b\\nc\"}\n\n");  // newlines escaped: one data line per event
  EXPECT_EQ(dump_json(nlohmann::json("x\xFF")), "\"x\xEF\xBF\xBD\"");
}

TEST(Metrics, PrometheusText) {
  Metrics m;
  m.requests = 3;
  m.add_generated(5);
  m.queue_depth = 2;
  const std::string t = m.render();
  EXPECT_NE(t.find("# TYPE qforge_requests_total counter\nqforge_requests_total 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("qforge_completion_tokens_total 5\n"), std::string::npos);
  EXPECT_NE(t.find("# TYPE qforge_queue_depth gauge\nqforge_queue_depth 2\n"), std::string::npos);
  EXPECT_GT(m.tokens_per_second(), 0.0);
}

}  // namespace
}  // namespace qf::server
