#include "eval/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/packed_matrix.h"
#include "runtime/runtime.h"

namespace qf::eval {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<int32_t> pseudo_random_tokens(int64_t n, int64_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (auto& v : t) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v = static_cast<int32_t>(x % static_cast<uint64_t>(vocab));
  }
  return t;
}

}  // namespace

uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "VmHWM:   1234 kB"
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

double triad_bandwidth_gbps(int n_threads, uint64_t bytes_per_array, int repetitions) {
  const size_t n = bytes_per_array / sizeof(float);
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  ThreadPool pool(n_threads);
  const float s = 3.0f;
  double best = 1e30;
  for (int r = 0; r < repetitions + 1; ++r) {  // the first pass only faults pages in
    const auto t0 = Clock::now();
    pool.parallel_for(static_cast<int64_t>(n), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) a[i] = b[i] + s * c[i];
    });
    if (r > 0) best = std::min(best, seconds_since(t0));
  }
  QF_CHECK(a[n / 2] == 7.0f, "triad produced a wrong value");
  return 3.0 * static_cast<double>(n * sizeof(float)) / best / 1e9;
}

BenchResult run_bench(const model::Model& model, const BenchOptions& opt) {
  QF_CHECK(opt.prompt_tokens >= 1 && opt.gen_tokens >= 1 && opt.repetitions >= 1, "bench sizes must be positive");
  const auto& c = model.config;
  BenchResult r;
  r.weight_bytes = model.weight_bytes();
  // A decode step reads every matrix once; of the embedding table only one row,
  // unless the head is tied to it (then the head reads it whole).
  r.decode_bytes = r.weight_bytes;
  if (!c.tie_embeddings) r.decode_bytes -= model.embed.nbytes() + (model.embed_packed ? model.embed_packed->bytes() : 0);
  if (!model.pos_embed.empty()) r.decode_bytes -= model.pos_embed.nbytes();

  runtime::RuntimeOptions ropt = opt.runtime;
  ropt.n_threads = opt.n_threads;
  ropt.context = std::max(opt.prompt_tokens, opt.gen_tokens);
  runtime::Runtime rt(model, ropt);
  const auto prompt = pseudo_random_tokens(opt.prompt_tokens, c.vocab_size);
  const auto gen = pseudo_random_tokens(opt.gen_tokens, c.vocab_size);
  double best_pp = 1e30, best_tg = 1e30;
  for (int rep = 0; rep < opt.repetitions; ++rep) {
    rt.reset();
    auto t0 = Clock::now();
    rt.forward(prompt, runtime::Logits::Last);
    best_pp = std::min(best_pp, seconds_since(t0));
    rt.reset();
    t0 = Clock::now();
    for (int32_t t : gen) rt.forward(std::span<const int32_t>(&t, 1), runtime::Logits::Last);
    best_tg = std::min(best_tg, seconds_since(t0));
  }
  r.pp_tokens_per_s = static_cast<double>(opt.prompt_tokens) / best_pp;
  r.tg_tokens_per_s = static_cast<double>(opt.gen_tokens) / best_tg;
  r.decode_weight_gbps = static_cast<double>(r.decode_bytes) * r.tg_tokens_per_s / 1e9;
  r.peak_rss_bytes = peak_rss_bytes();  // before a triad measured here allocates its buffers
  r.triad_gbps = opt.triad_gbps > 0 ? opt.triad_gbps : triad_bandwidth_gbps(rt.n_threads());
  r.bound_ratio = r.decode_weight_gbps / r.triad_gbps;
  return r;
}

}  // namespace qf::eval
