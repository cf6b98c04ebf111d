#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace qf {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 1)), enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(int64_t n) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  done_ = std::min(total_, done_ + n);
  draw(done_ == total_);
}

void ProgressBar::set_status(std::string status) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  status_ = std::move(status);
}

void ProgressBar::finish() {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (finished_) return;
  draw(true);
  std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::draw(bool force) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const double frac = static_cast<double>(done_) / static_cast<double>(total_);
  const int filled = static_cast<int>(frac * kWidth);
  const double secs = std::chrono::duration<double>(now - start_).count();
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  // Trailing spaces clear what a longer status drew before.
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %5.1f%% %.1fs %s   ", label_.c_str(), bar.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), 100.0 * frac, secs, status_.c_str());
  std::fflush(stderr);
}

}  // namespace qf
