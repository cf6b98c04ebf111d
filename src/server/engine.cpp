#include "server/engine.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "server/text_stream.h"

namespace qf::server {

bool Job::wait(Delta& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !deltas_.empty() || done_; });
  if (deltas_.empty()) return false;
  out = std::move(deltas_.front());
  deltas_.pop_front();
  return true;
}

bool Job::finished() const {
  std::lock_guard lock(mu_);
  return done_ && deltas_.empty();
}

std::string Job::finish_reason() const {
  std::lock_guard lock(mu_);
  return reason_;
}

std::string Job::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

int64_t Job::completion_tokens() const {
  std::lock_guard lock(mu_);
  return completion_tokens_;
}

void Job::push(Delta d) {
  {
    std::lock_guard lock(mu_);
    deltas_.push_back(std::move(d));
  }
  cv_.notify_all();
}

void Job::finish(std::string reason, std::string error) {
  {
    std::lock_guard lock(mu_);
    done_ = true;
    reason_ = std::move(reason);
    error_ = std::move(error);
  }
  cv_.notify_all();
}

struct Engine::Slot {
  runtime::KVCache cache;
  std::shared_ptr<Job> job;  // null: free
  runtime::Sampler sampler;
  TextStream text;
  int64_t generated = 0;
  int32_t next = -1;  // sampled, to be fed at the next step
  bool at_start = true;
};

Engine::Engine(runtime::Runtime& runtime, const tokenizer::Tokenizer& tok, EngineOptions options, Metrics& metrics)
    : runtime_(runtime), tok_(tok), options_(options), metrics_(metrics) {
  QF_CHECK(options_.parallel >= 1, "--parallel must be at least 1, got {}", options_.parallel);
  for (int i = 0; i < options_.parallel; ++i) {
    auto s = std::make_unique<Slot>();
    s->cache = runtime_.new_cache();
    slots_.push_back(std::move(s));
  }
  metrics_.slots_total = options_.parallel;
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { drain(); }

bool Engine::draining() const {
  std::lock_guard lock(mu_);
  return draining_;
}

std::shared_ptr<Job> Engine::submit(Generation g) {
  auto job = std::make_shared<Job>();
  job->prompt_tokens_ = static_cast<int64_t>(g.prompt.size());
  job->gen_ = std::move(g);
  {
    std::lock_guard lock(mu_);
    if (draining_ || static_cast<int64_t>(queue_.size()) >= options_.max_queue) return nullptr;
    queue_.push_back(job);
    metrics_.queue_depth = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
  return job;
}

void Engine::drain() {
  {
    std::lock_guard lock(mu_);
    draining_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Engine::release(Slot& s, const std::string& reason, const std::string& error) {
  if (reason == "cancelled") {
    ++metrics_.cancelled;
  } else {
    ++metrics_.completions;
  }
  {
    std::lock_guard lock(s.job->mu_);
    s.job->completion_tokens_ = s.generated;
  }
  s.job->finish(reason, error);
  s.job.reset();
  --metrics_.slots_busy;
}

namespace {

// log-softmax of the chosen token and the `top` most likely alternatives.
TokenLogprob logprobs_of(const float* logits, int64_t n, int32_t token, int top, const tokenizer::Tokenizer& tok) {
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  TokenLogprob lp;
  lp.token = sanitize_utf8(tok.token_to_piece(token));
  lp.logprob = static_cast<float>(static_cast<double>(logits[token]) - lse);
  if (top > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    const size_t k = std::min<size_t>(static_cast<size_t>(top), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (size_t i = 0; i < k; ++i)
      lp.top.emplace_back(sanitize_utf8(tok.token_to_piece(ids[i])),
                          static_cast<float>(static_cast<double>(logits[ids[i]]) - lse));
  }
  return lp;
}

}  // namespace

void Engine::advance(Slot& s, const float* logits) {
  const Generation& g = s.job->gen_;
  const int64_t vocab = runtime_.model().config.vocab_size;
  const int32_t token = s.sampler.sample({logits, static_cast<size_t>(vocab)});
  ++s.generated;
  metrics_.add_generated(1);
  Delta d;
  if (g.logprobs >= 0) d.logprobs.push_back(logprobs_of(logits, vocab, token, g.logprobs, tok_));
  if (std::find(g.stop_tokens.begin(), g.stop_tokens.end(), token) != g.stop_tokens.end()) {
    d.text = s.text.finish();
    if (!d.text.empty() || !d.logprobs.empty()) s.job->push(std::move(d));
    release(s, "stop");
    return;
  }
  std::string piece = tok_.token_to_piece(token);
  if (s.at_start && g.strip_leading_space && piece.starts_with(' ')) piece.erase(0, 1);
  s.at_start = false;
  d.text = s.text.push(piece);
  if (s.text.stopped()) {
    s.job->push(std::move(d));
    release(s, "stop");
    return;
  }
  if (s.generated >= g.max_tokens || s.cache.size() >= s.cache.capacity()) {
    d.text += s.text.finish();
    s.job->push(std::move(d));
    release(s, "length");
    return;
  }
  if (!d.text.empty() || !d.logprobs.empty()) s.job->push(std::move(d));
  s.next = token;
}

void Engine::loop() {
  for (;;) {
    std::vector<Slot*> admitted;
    {
      std::unique_lock lock(mu_);
      const auto busy = [&] {
        return std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->job != nullptr; });
      };
      cv_.wait(lock, [&] { return !queue_.empty() || busy() || draining_; });
      if (queue_.empty() && !busy()) {
        if (draining_) return;
        continue;
      }
      for (auto& s : slots_) {
        if (s->job) continue;
        while (!queue_.empty() && !s->job) {
          std::shared_ptr<Job> job = std::move(queue_.front());
          queue_.pop_front();
          if (job->cancelled()) {
            ++metrics_.cancelled;
            job->finish("cancelled");
            continue;
          }
          s->job = std::move(job);
          admitted.push_back(s.get());
        }
      }
      metrics_.queue_depth = static_cast<int64_t>(queue_.size());
    }
    for (Slot* s : admitted) {
      ++metrics_.slots_busy;
      const Generation& g = s->job->gen_;
      s->cache.clear();
      s->sampler = runtime::Sampler(g.sampler);
      s->text = TextStream(g.stop);
      s->generated = 0;
      s->at_start = true;
      metrics_.prompt_tokens += static_cast<int64_t>(g.prompt.size());
      try {
        const Tensor logits = runtime_.forward(s->cache, g.prompt, runtime::Logits::Last);
        advance(*s, logits.data<float>());
      } catch (const std::exception& e) {
        release(*s, "error", e.what());
      }
    }
    // One step for every slot with a token to feed; cancelled ones leave first.
    std::vector<Slot*> step;
    for (auto& s : slots_) {
      if (!s->job) continue;
      if (s->job->cancelled()) {
        release(*s, "cancelled");
        continue;
      }
      if (std::find(admitted.begin(), admitted.end(), s.get()) != admitted.end() && s->generated == 0) continue;
      step.push_back(s.get());
    }
    if (step.empty()) continue;
    std::vector<int32_t> tokens;
    std::vector<runtime::KVCache*> caches;
    for (Slot* s : step) {
      tokens.push_back(s->next);
      caches.push_back(&s->cache);
    }
    try {
      const Tensor logits = runtime_.forward_batch(tokens, caches);
      ++metrics_.decode_steps;
      metrics_.decode_rows += static_cast<int64_t>(step.size());
      const int64_t vocab = logits.dim(1);
      for (size_t i = 0; i < step.size(); ++i) advance(*step[i], logits.data<float>() + static_cast<int64_t>(i) * vocab);
    } catch (const std::exception& e) {
      for (Slot* s : step)
        if (s->job) release(*s, "error", e.what());
    }
  }
}

}  // namespace qf::server
