#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "core/error.h"

namespace qf {
namespace {

std::pair<int64_t, int64_t> chunk(int64_t n, int parts, int index) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = index * base + std::min<int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

// The pools whose chunks the current thread is running, innermost first.
struct ActiveFrame {
  const ThreadPool* pool;
  const ActiveFrame* outer;
};
thread_local const ActiveFrame* tl_active = nullptr;

class ActiveScope {
 public:
  explicit ActiveScope(const ThreadPool* pool) : frame_{pool, tl_active} { tl_active = &frame_; }
  ~ActiveScope() { tl_active = frame_.outer; }
  ActiveScope(const ActiveScope&) = delete;
  ActiveScope& operator=(const ActiveScope&) = delete;

 private:
  ActiveFrame frame_;
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `ready` for about kSpin before giving up (true when it became true).
constexpr auto kSpin = std::chrono::microseconds(100);
template <class Ready>
bool spin_until(Ready&& ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads > 0 ? n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {
  try {
    workers_.reserve(static_cast<size_t>(n_threads_ - 1));
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  } catch (const std::exception& e) {
    // Workers already started wait on members that are about to be
    // destroyed: stop and join them before reporting.
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    fail("cannot start {} threads: {}", n_threads_, e.what());
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

bool ThreadPool::inside() const {
  for (const ActiveFrame* f = tl_active; f; f = f->outer) {
    if (f->pool == this) return true;
  }
  return false;
}

void ThreadPool::worker_loop(int index) {
  const ActiveScope scope(this);
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n;
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
    }
    const auto [begin, end] = chunk(n, n_threads_, index);
    std::exception_ptr err;
    if (begin < end) {
      try {
        (*job)(begin, end);
      } catch (...) {
        err = std::current_exception();
      }
    }
    std::lock_guard lock(mutex_);
    if (err && !error_) error_ = err;
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  // Single-threaded, trivial, or nested inside one of our own chunks (the
  // workers are busy with the outer job): run it all here.
  if (n_threads_ == 1 || n == 1 || inside()) {
    fn(0, n);
    return;
  }
  const std::lock_guard call(call_mutex_);
  const ActiveScope scope(this);
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    error_ = nullptr;
    pending_ = n_threads_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  std::exception_ptr mine;
  const auto [begin, end] = chunk(n, n_threads_, 0);
  try {
    if (begin < end) fn(begin, end);
  } catch (...) {
    mine = std::current_exception();
  }
  spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
  std::exception_ptr theirs = std::move(error_);
  error_ = nullptr;
  lock.unlock();
  if (mine) std::rethrow_exception(mine);
  if (theirs) std::rethrow_exception(theirs);
}

}  // namespace qf
