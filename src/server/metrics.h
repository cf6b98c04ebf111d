// Counters and gauges of a running server, rendered in the Prometheus text
// exposition format (version 0.0.4) for GET /metrics. Updated from the HTTP
// threads and the engine thread: every field is atomic.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>

namespace qf::server {

class Metrics {
 public:
  std::atomic<int64_t> requests{0};         // every HTTP request
  std::atomic<int64_t> requests_failed{0};  // answered with status >= 400
  std::atomic<int64_t> completions{0};      // generations that ran to their end
  std::atomic<int64_t> cancelled{0};        // generations whose client went away
  std::atomic<int64_t> prompt_tokens{0};
  std::atomic<int64_t> completion_tokens{0};
  std::atomic<int64_t> decode_steps{0};     // batched decode steps
  std::atomic<int64_t> decode_rows{0};      // sequences summed over those steps
  std::atomic<int64_t> queue_depth{0};      // accepted, waiting for a slot
  std::atomic<int64_t> slots_busy{0};
  int64_t slots_total = 0;

  // Records `n` generated tokens now, for the tokens/s gauge.
  void add_generated(int64_t n);
  // Generated tokens per second over the last `kWindow`.
  double tokens_per_second() const;
  std::string render() const;

  static constexpr std::chrono::seconds kWindow{10};

 private:
  using Clock = std::chrono::steady_clock;
  mutable std::mutex mu_;
  mutable std::deque<std::pair<Clock::time_point, int64_t>> recent_;
  Clock::time_point start_ = Clock::now();
};

}  // namespace qf::server
