#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace qf::server {

void Metrics::add_generated(int64_t n) {
  completion_tokens += n;
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  recent_.emplace_back(now, n);
  while (!recent_.empty() && now - recent_.front().first > kWindow) recent_.pop_front();
}

double Metrics::tokens_per_second() const {
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  while (!recent_.empty() && now - recent_.front().first > kWindow) recent_.pop_front();
  int64_t total = 0;
  for (const auto& [t, n] : recent_) total += n;
  // A server younger than the window divides by its age.
  const double span = std::min(std::chrono::duration<double>(kWindow).count(),
                               std::max(1e-3, std::chrono::duration<double>(now - start_).count()));
  return static_cast<double>(total) / span;
}

std::string Metrics::render() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  metric("qforge_requests_total", "counter", "HTTP requests received.", requests.load());
  metric("qforge_requests_failed_total", "counter", "HTTP requests answered with an error status.",
         requests_failed.load());
  metric("qforge_completions_total", "counter", "Generations that ran to their end.", completions.load());
  metric("qforge_cancelled_total", "counter", "Generations stopped because the client disconnected.",
         cancelled.load());
  metric("qforge_prompt_tokens_total", "counter", "Prompt tokens processed.", prompt_tokens.load());
  metric("qforge_completion_tokens_total", "counter", "Tokens generated.", completion_tokens.load());
  metric("qforge_decode_steps_total", "counter", "Batched decode steps run.", decode_steps.load());
  metric("qforge_decode_rows_total", "counter", "Sequences decoded, summed over the batched steps.",
         decode_rows.load());
  metric("qforge_queue_depth", "gauge", "Requests waiting for a free slot.", queue_depth.load());
  metric("qforge_slots_busy", "gauge", "Slots generating now.", slots_busy.load());
  metric("qforge_slots_total", "gauge", "Slots (requests decoded together).", slots_total);
  metric("qforge_tokens_per_second", "gauge", "Tokens generated per second over the last 10 s.",
         fmt::format("{:.3f}", tokens_per_second()));
  return out;
}

}  // namespace qf::server
