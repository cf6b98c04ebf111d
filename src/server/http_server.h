// The HTTP face of the server (cpp-httplib): OpenAI-compatible routes over
// an Engine.
//   POST /v1/completions, POST /v1/chat/completions (stream: true -> SSE
//   ending in "data: [DONE]"), GET /v1/models, GET /health, GET /metrics.
// Errors are OpenAI-style JSON with their status: 400 bad input, 401 missing
// or wrong API key, 404 unknown model or route, 413 body over the limit,
// 503 while shutting down or when the queue is full.
// A client that disconnects is noticed at the next write (a token, or a
// keep-alive written every 200 ms while nothing else comes: an SSE comment
// when streaming, a space before the JSON otherwise) and its job is cancelled,
// which frees its slot before the engine's next step.
#pragma once

#include <memory>
#include <string>

#include "server/chat_template.h"
#include "server/engine.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

namespace qf::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (bind() says which)
  std::string api_key;  // empty: no authentication
  size_t max_body_bytes = size_t{1} << 20;
  std::string model_name;  // what /v1/models lists and requests must name
  int http_threads = 256;  // connections served at once (each stream holds one)
};

class HttpServer {
 public:
  HttpServer(Engine& engine, const tokenizer::Tokenizer& tok, ChatFormat chat, ServerOptions options,
             Metrics& metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port. Throws qf::Error when it cannot.
  int bind();
  // Serves until shutdown() has finished. Returns normally then.
  void run();
  // From any thread: new requests get 503 from now on, the engine finishes
  // every accepted request, their responses are written out, and run()
  // returns. Blocks until then.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qf::server
