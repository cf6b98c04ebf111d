// A fixed set of worker threads and a blocking parallel_for over an index
// range. Work is split into contiguous chunks (good for row-parallel kernels).
//
// Calling rules:
//  * parallel_for may be called from several threads at once; the calls are
//    serialized (one job runs on the pool at a time, the others wait).
//  * A nested call (from inside a chunk of the same pool, on a worker or on
//    the calling thread) runs the whole range serially inline on the thread
//    that makes it, so it cannot deadlock waiting for busy workers.
//  * Cross-nesting two pools from two threads in opposite orders (a chunk of
//    A calls B while a chunk of B calls A) can deadlock: don't.
//
// Idle workers, and a caller waiting for the last chunk, spin for about
// 100 microseconds before they block on a condition variable. Decode runs
// hundreds of short parallel_for calls per token; waking a blocked thread costs
// tens to hundreds of microseconds (on virtual machines, a halted vCPU), which
// would otherwise be paid on every call. OpenBLAS and OpenMP runtimes spin the
// same way.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qf {

class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency(). Throws
  // qf::Error when the worker threads cannot be started.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), at most one chunk
  // per thread, the calling thread included; returns when all are done.
  // An exception from any chunk is rethrown here (the calling thread's own
  // chunk first, else the first worker's to fail); all chunks still finish.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  // True when the current thread is running a chunk of this pool (a worker,
  // or a caller inside parallel_for).
  bool inside() const;

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // serializes concurrent parallel_for callers
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  // Written under mutex_, also read without it by threads spinning for the
  // next job or for the last chunk to finish.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace qf
