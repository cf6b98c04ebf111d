#include "server/http_server.h"

#include <httplib.h>

#include <fmt/format.h>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <random>
#include <thread>

#include "core/error.h"
#include "server/api_error.h"
#include "server/openai_json.h"
#include "server/prompt.h"
#include "server/request.h"
#include "server/text_stream.h"

namespace qf::server {

using nlohmann::json;

namespace {

constexpr auto kKeepAlive = std::chrono::milliseconds(200);

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, error_body(e)); }

// Constant-time comparison, so the key cannot be guessed byte by byte from timings.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Debian's httplib binds with SO_REUSEPORT, so a second server on a taken port
// would share it silently. A plain bind (no SO_REUSEPORT) of the same address
// fails while anyone listens there: that is the check.
bool port_is_free(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return true;  // httplib reports it
  bool free = true;
  for (addrinfo* ai = res; ai && free; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // ignore TIME_WAIT leftovers only
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE) free = false;
    ::close(fd);
  }
  freeaddrinfo(res);
  return free;
}

}  // namespace

struct HttpServer::Impl {
  Engine& engine;
  const tokenizer::Tokenizer& tok;
  ChatFormat chat;
  ServerOptions opt;
  Metrics& metrics;
  httplib::Server svr;
  std::atomic<bool> shutting_down{false};
  std::atomic<int64_t> inflight{0};  // completion requests not yet fully answered
  std::atomic<uint64_t> next_id{1};
  uint64_t id_salt = std::random_device{}();
  int64_t created = static_cast<int64_t>(std::time(nullptr));
  std::vector<int32_t> chat_stop_tokens;
  std::mutex shutdown_mu;
  bool shut = false;

  Impl(Engine& e, const tokenizer::Tokenizer& t, ChatFormat c, ServerOptions o, Metrics& m)
      : engine(e), tok(t), chat(c), opt(std::move(o)), metrics(m) {
    chat_stop_tokens = end_marker_tokens(tok, chat);
    setup();
  }

  void setup();
  void completion(const httplib::Request& req, httplib::Response& res, bool is_chat);
};

namespace {

// Holds `inflight` up while a response is being produced (past the handler's
// return: streamed bodies are written by the content provider afterwards).
struct Inflight {
  explicit Inflight(std::atomic<int64_t>& n) : count(n) { ++count; }
  ~Inflight() { --count; }
  std::atomic<int64_t>& count;
};

}  // namespace

void HttpServer::Impl::setup() {
  svr.new_task_queue = [n = opt.http_threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  svr.set_payload_max_length(opt.max_body_bytes);
  svr.set_tcp_nodelay(true);  // tokens are small writes; do not let Nagle hold them back
  // An idle keep-alive connection holds its thread in a read this long, and
  // shutdown waits for it: 1 s instead of httplib's 5.
  svr.set_keep_alive_timeout(1);
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (shutting_down.load()) {
      send_error(res, ApiError(503, "the server is shutting down", "", "shutting_down"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!opt.api_key.empty() && req.path != "/health") {
      const std::string auth = req.get_header_value("Authorization");
      if (auth.empty()) {
        send_error(res, ApiError(401, "no API key given: send 'Authorization: Bearer KEY'", "", "invalid_api_key"));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!auth.starts_with("Bearer ") || !same_secret(auth.substr(7), opt.api_key)) {
        send_error(res, ApiError(401, "incorrect API key provided", "", "invalid_api_key"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // an error we already described
    if (res.status == 413) {
      send_error(res, ApiError(413, "the request body is larger than the server's limit", "", "body_too_large"));
    } else if (res.status == 404) {
      send_error(res, ApiError(404, fmt::format("no route {} {}", req.method, req.path), "", "unknown_url"));
    } else {
      send_error(res, ApiError(res.status, fmt::format("HTTP error {}", res.status)));
    }
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, "internal error: " + what));
  });
  svr.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    ++metrics.requests;
    if (res.status >= 400) ++metrics.requests_failed;
  });
  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", "ok"}, {"slots_total", engine.parallel()},
                         {"slots_busy", metrics.slots_busy.load()}, {"queue_depth", metrics.queue_depth.load()}});
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, models_response(opt.model_name, created));
  });
  svr.Post("/v1/completions",
           [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, false); });
  svr.Post("/v1/chat/completions",
           [this](const httplib::Request& req, httplib::Response& res) { completion(req, res, true); });
}

void HttpServer::Impl::completion(const httplib::Request& req, httplib::Response& res, bool is_chat) {
  auto guard = std::make_shared<Inflight>(inflight);
  CompletionRequest r;
  Generation g;
  try {
    r = parse_completion_request(req.body, is_chat, opt.model_name);
    if (is_chat) {
      g.prompt = encode_with_special_tokens(tok, apply_chat_template(chat, r.messages), tok.vocab().add_bos);
      g.stop_tokens = chat_stop_tokens;
    } else {
      g.prompt = tok.encode(r.prompt, tok.vocab().add_bos);
      // As `qforge generate` prints it: no dummy-prefix space when the text starts at BOS.
      g.strip_leading_space = r.prompt.empty() && tok.vocab().kind == tokenizer::VocabKind::SentencePiece &&
                              tok.vocab().add_space_prefix;
    }
    if (g.prompt.empty())
      throw ApiError(400, "the prompt is empty and the tokenizer has no BOS token to start from", "prompt");
    if (tok.eos_id() >= 0) g.stop_tokens.push_back(tok.eos_id());
    g.max_tokens = check_context(r, static_cast<int64_t>(g.prompt.size()), engine.context());
  } catch (const ApiError& e) {
    send_error(res, e);
    return;
  }
  g.sampler = {.temperature = r.temperature, .top_k = r.top_k, .top_p = r.top_p,
               .seed = r.seed ? *r.seed : std::random_device{}()};
  g.stop = r.stop;
  if (is_chat)  // the end of the assistant's turn when the model writes it out as text
    for (const std::string& m : chat_end_markers(chat)) g.stop.push_back(m);
  g.logprobs = r.logprobs;
  std::shared_ptr<Job> job = engine.submit(std::move(g));
  if (!job) {
    send_error(res, engine.draining() ? ApiError(503, "the server is shutting down", "", "shutting_down")
                                      : ApiError(503, "too many requests are queued; try again later", "", "queue_full"));
    return;
  }
  ResponseMeta meta{fmt::format("{}-{:x}{:08x}", is_chat ? "chatcmpl" : "cmpl", next_id++, id_salt & 0xffffffffu),
                    static_cast<int64_t>(std::time(nullptr)), opt.model_name, is_chat};
  const bool with_lp = r.logprobs >= 0;
  // The job goes when the response does, also when the client left mid-way.
  auto releaser = [job, guard](bool) { job->cancel(); };
  if (r.stream) {
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, meta, with_lp](size_t, httplib::DataSink& sink) {
          auto write = [&](const std::string& s) {
            if (sink.write(s.data(), s.size())) return true;
            job->cancel();
            return false;
          };
          bool first = true;
          Delta d;
          for (;;) {
            if (job->wait(d, kKeepAlive)) {
              if (d.text.empty() && d.logprobs.empty()) continue;
              if (!write(sse_event(stream_chunk(meta, d.text, d.logprobs, with_lp, "", first)))) return false;
              first = false;
            } else if (job->finished()) {
              break;
            } else if (!write(": keep-alive\n\n")) {
              return false;
            }
          }
          const std::string reason = job->finish_reason();
          if (reason == "error") {
            write(sse_event(error_body(ApiError(500, "generation failed: " + job->error()))));
          } else {
            const Usage u{job->prompt_tokens(), job->completion_tokens()};
            if (!write(sse_event(stream_chunk(meta, "", {}, with_lp, reason, first, &u)))) return false;
          }
          if (!write(kSseDone)) return false;
          sink.done();
          return true;
        },
        releaser);
    res.set_header("Cache-Control", "no-cache");
  } else {
    res.set_chunked_content_provider(
        // Not plain "application/json": httplib would gzip it and hold the keep-alive bytes back.
        "application/json; charset=utf-8",
        [job, meta, with_lp](size_t, httplib::DataSink& sink) {
          std::string text;
          std::vector<TokenLogprob> lps;
          Delta d;
          for (;;) {
            if (job->wait(d, kKeepAlive)) {
              text += d.text;
              for (TokenLogprob& lp : d.logprobs) lps.push_back(std::move(lp));
            } else if (job->finished()) {
              break;
            } else if (!sink.write(" ", 1)) {  // JSON allows leading whitespace
              job->cancel();
              return false;
            }
          }
          const std::string reason = job->finish_reason();
          const std::string body =
              reason == "error"
                  ? dump_json(error_body(ApiError(500, "generation failed: " + job->error())))
                  : dump_json(completion_response(meta, text, lps, with_lp, reason,
                                                  {job->prompt_tokens(), job->completion_tokens()}));
          if (!sink.write(body.data(), body.size())) return false;
          sink.done();
          return true;
        },
        releaser);
  }
}

HttpServer::HttpServer(Engine& engine, const tokenizer::Tokenizer& tok, ChatFormat chat, ServerOptions options,
                       Metrics& metrics)
    : impl_(std::make_unique<Impl>(engine, tok, chat, std::move(options), metrics)) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  const ServerOptions& o = impl_->opt;
  if (o.port == 0) {
    const int port = impl_->svr.bind_to_any_port(o.host);
    QF_CHECK(port > 0, "cannot listen on {} (any port)", o.host);
    return port;
  }
  QF_CHECK(port_is_free(o.host, o.port), "cannot listen on {}:{}: another process listens there", o.host, o.port);
  QF_CHECK(impl_->svr.bind_to_port(o.host, o.port), "cannot listen on {}:{} (in use, or not an address of this host)",
           o.host, o.port);
  return o.port;
}

void HttpServer::run() { impl_->svr.listen_after_bind(); }

void HttpServer::shutdown() {
  std::lock_guard lock(impl_->shutdown_mu);
  if (impl_->shut) return;
  impl_->shutting_down = true;
  impl_->engine.drain();  // every accepted request runs to its end
  while (impl_->inflight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  impl_->svr.stop();
  impl_->shut = true;
}

}  // namespace qf::server
