// A one-line progress bar on stderr for long jobs. It draws only when stderr
// is a terminal, so logs and CI output stay clean. advance() may be called
// from worker threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace qf {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  ~ProgressBar();
  void advance(int64_t n = 1);
  // Text drawn after the counts (e.g. "loss 0.123"), shown from the next draw on.
  void set_status(std::string status);
  void finish();
  bool enabled() const { return enabled_; }

 private:
  void draw(bool force);
  std::mutex mutex_;
  std::string label_;
  std::string status_;
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace qf
