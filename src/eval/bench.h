// Speed and memory of a model in the runtime, llama-bench style (pp512:
// prompt processing; tg128: token generation), reported next to the
// machine's memory bandwidth measured in the same run, because single-stream
// decoding is bound by how fast the weights can be streamed from memory.
#pragma once

#include <cstdint>

#include "model/model.h"
#include "runtime/runtime.h"

namespace qf::eval {

struct BenchOptions {
  int64_t prompt_tokens = 512;  // pp: one batched forward of this many tokens
  int64_t gen_tokens = 128;     // tg: this many single-token forwards from an empty cache
  int repetitions = 3;          // best of
  int n_threads = 0;
  runtime::RuntimeOptions runtime;  // kernel target, int8 activations (threads and context are set from the above)
  double triad_gbps = 0;            // the bandwidth bound; measured in run_bench when 0
};

struct BenchResult {
  double pp_tokens_per_s = 0;
  double tg_tokens_per_s = 0;
  uint64_t weight_bytes = 0;       // every weight once as held in memory (packed layers as packed; a tied head once)
  uint64_t decode_bytes = 0;       // weight bytes one decode step reads (embedding rows excluded)
  double decode_weight_gbps = 0;   // decode_bytes * tg tokens/s / 1e9
  double triad_gbps = 0;           // STREAM triad bandwidth on this many threads
  double bound_ratio = 0;          // decode_weight_gbps / triad_gbps
  uint64_t peak_rss_bytes = 0;     // of the process since the last reset_peak_rss() (or its start), after running
};

BenchResult run_bench(const model::Model& model, const BenchOptions& options);

// STREAM triad a = b + s * c over three arrays of `bytes_per_array` (make
// them larger than the last-level cache), best of `repetitions`, counting
// 3 arrays of traffic per pass as STREAM does. GB/s (1e9 bytes).
double triad_bandwidth_gbps(int n_threads, uint64_t bytes_per_array = 256ull << 20, int repetitions = 5);

// Peak resident set size of this process, bytes: VmHWM of /proc/self/status
// (getrusage's maximum where that is unreadable).
uint64_t peak_rss_bytes();
// Restarts the peak at the current resident size (Linux: "5" to
// /proc/self/clear_refs), so several measurements in one process each get
// their own peak. Returns false where the kernel does not allow it.
bool reset_peak_rss();

}  // namespace qf::eval
