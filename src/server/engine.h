// The generation engine of the server: one thread owns the Runtime and K
// slots (one KVCache each). Requests wait in a FIFO queue for a free slot; a
// slot's prompt is prefilled on its own, then every busy slot advances one
// token per step in one Runtime::forward_batch call (K rows through each
// linear layer together). Each request is a Job its HTTP thread waits on for
// text deltas; cancelling a Job (the client went away) frees its slot before
// the next step.
//
// Per request, the tokens are what runtime::generate() gives for the same
// prompt and SamplerConfig: the prompt's last logits are sampled, each token is
// fed back, generation stops at a stop token, after max_tokens or when the
// context is full (exactly so with one slot; with several, the batched
// logits may differ from single-sequence ones in the last float bits).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/sampler.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

namespace qf::server {

struct Generation {
  std::vector<int32_t> prompt;  // non-empty, fits the context
  int64_t max_tokens = 16;
  runtime::SamplerConfig sampler;
  std::vector<std::string> stop;         // stop strings
  std::vector<int32_t> stop_tokens;      // EOS, end-of-turn tokens: end without text
  int logprobs = -1;                     // -1 off; else alternatives per token
  bool strip_leading_space = false;      // drop the dummy-prefix space of the first piece
};

struct TokenLogprob {
  std::string token;  // the token's text (ill-formed UTF-8 replaced)
  float logprob = 0;  // log-softmax of the model's logits
  std::vector<std::pair<std::string, float>> top;
};

struct Delta {
  std::string text;
  std::vector<TokenLogprob> logprobs;
};

class Job {
 public:
  // Waits up to `timeout` for news. Returns true with `out` filled when a
  // delta came; false when none came (then finished() says whether it ended).
  bool wait(Delta& out, std::chrono::milliseconds timeout);
  bool finished() const;
  // The client is gone: the engine drops the job before its next step.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Valid once finished(): "stop", "length", "cancelled" or "error".
  std::string finish_reason() const;
  std::string error() const;  // what failed, for "error"
  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t completion_tokens() const;

 private:
  friend class Engine;
  void push(Delta d);
  void finish(std::string reason, std::string error = {});

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Delta> deltas_;
  bool done_ = false;
  std::string reason_, error_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  std::atomic<bool> cancelled_{false};
  Generation gen_;
};

struct EngineOptions {
  int parallel = 1;          // slots decoded together
  int64_t max_queue = 1024;  // waiting requests beyond this are refused
};

class Engine {
 public:
  // `runtime` and `tok` must outlive the engine; the engine's thread is the
  // only user of `runtime` from now on.
  Engine(runtime::Runtime& runtime, const tokenizer::Tokenizer& tok, EngineOptions options, Metrics& metrics);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a generation. Returns nullptr when the engine is draining or the
  // queue is full (the caller answers 503).
  std::shared_ptr<Job> submit(Generation g);
  // Refuses new work, finishes what was accepted (queued and running), and
  // joins the thread. Idempotent.
  void drain();
  int parallel() const { return options_.parallel; }
  int64_t context() const { return runtime_.context(); }
  bool draining() const;

 private:
  struct Slot;
  void loop();
  // Samples slot's next token from `logits` and hands its text to the job.
  void advance(Slot& s, const float* logits);
  void release(Slot& s, const std::string& reason, const std::string& error = {});

  runtime::Runtime& runtime_;
  const tokenizer::Tokenizer& tok_;
  EngineOptions options_;
  Metrics& metrics_;
  std::vector<std::unique_ptr<Slot>> slots_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool draining_ = false;
  std::thread thread_;
};

}  // namespace qf::server
