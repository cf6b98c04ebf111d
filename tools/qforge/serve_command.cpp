#include "serve_command.h"

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <poll.h>
#include <string>
#include <thread>
#include <unistd.h>

#include "core/error.h"
#include "model/model.h"
#include "runtime/runtime.h"
#include "runtime_flags.h"
#include "server/chat_template.h"
#include "server/engine.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

namespace qf::cli {
namespace {

int g_signal_pipe[2] = {-1, -1};

void on_stop_signal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &b, 1);  // async-signal-safe
}

struct ServeOptions {
  RuntimeFlags runtime;
  std::string model;
  std::string model_name;
  server::ServerOptions http;
  int threads = 0;
  int parallel = 1;
  int64_t ctx = 0;
  int64_t max_queue = 1024;
};

void run_serve(ServeOptions opt) {
  if (opt.http.api_key.empty())
    if (const char* k = std::getenv("QFORGE_API_KEY")) opt.http.api_key = k;
  runtime::RuntimeOptions flags;
  apply_runtime_flags(opt.runtime, flags);
  // SIGTERM / SIGINT only write their number to a pipe (any thread may take
  // them: OpenBLAS starts its threads before main), and a watcher thread
  // reading it runs the shutdown as ordinary code. A vanished client must
  // not kill the server with SIGPIPE.
  QF_CHECK(::pipe(g_signal_pipe) == 0, "cannot create a pipe for signal handling");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const model::Model model = model::load_model(opt.model, load_options(opt.runtime));
  const auto tok = tokenizer::make_tokenizer(model::load_vocab(opt.model));
  const server::ChatFormat chat = server::load_chat_format(opt.model);
  runtime::RuntimeOptions ropt = flags;
  ropt.n_threads = opt.threads;
  ropt.context = opt.ctx;
  runtime::Runtime rt(model, ropt);
  server::Metrics metrics;
  server::Engine engine(rt, *tok, {.parallel = opt.parallel, .max_queue = opt.max_queue}, metrics);
  if (opt.model_name.empty()) {
    const std::filesystem::path p(opt.model);
    opt.model_name = (p.has_filename() ? p : p.parent_path()).filename().string();
  }
  opt.http.model_name = opt.model_name;
  server::HttpServer http(engine, *tok, chat, opt.http, metrics);
  const int port = http.bind();
  // Tests and scripts read this line to learn the port (--port 0).
  fmt::print("qforge serve: listening on http://{}:{} (model {}, {} slot{}, context {}, chat format {})\n",
             opt.http.host, port, opt.model_name, opt.parallel, opt.parallel == 1 ? "" : "s", rt.context(),
             server::chat_format_name(chat));
  std::fflush(stdout);

  std::atomic<bool> served{false};
  std::thread watcher([&] {
    while (!served.load()) {
      pollfd p{g_signal_pipe[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      unsigned char sig = 0;
      if (::read(g_signal_pipe[0], &sig, 1) == 1) {
        fmt::print(stderr, "qforge serve: {}: finishing the requests in flight\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        http.shutdown();
        return;
      }
    }
  });
  http.run();
  served = true;
  watcher.join();
  engine.drain();
  fmt::print(stderr, "qforge serve: stopped\n");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto opt = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("model", opt->model, "model: any folder or file qforge loads (fp32, quantized folders, GGUF)")
      ->required();
  cmd->add_option("--host", opt->http.host, "address to listen on");
  cmd->add_option("--port", opt->http.port, "port (0 = any free port, printed at start)")->check(CLI::Range(0, 65535));
  cmd->add_option("-t,--threads", opt->threads, "compute threads (0 = all cores)")->check(CLI::Range(0, 4096));
  cmd->add_option("--parallel", opt->parallel, "requests decoded together (slots, one KV cache each)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--ctx", opt->ctx, "context length per slot (0 = the model's, at most 4096)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--api-key", opt->http.api_key, "require 'Authorization: Bearer KEY' (default: $QFORGE_API_KEY)");
  cmd->add_option("--model-name", opt->model_name, "the model id clients send (default: the model's file or folder name)");
  cmd->add_option("--max-body", opt->http.max_body_bytes, "largest request body in bytes")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  cmd->add_option("--max-queue", opt->max_queue, "requests waiting for a slot before new ones get 503")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--http-threads", opt->http.http_threads, "connections served at once")->check(CLI::Range(4, 4096));
  add_runtime_flags(cmd, opt->runtime);
  cmd->callback([opt] { run_serve(*opt); });
}

}  // namespace qf::cli
