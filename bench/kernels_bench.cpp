// The integer matmul kernels at LLM shapes against two baselines measured in
// the same run: OpenBLAS sgemm on the same [M, K] x [K, N] problem in fp32
// (x_sgemm = sgemm time / kernel time, both at the same thread count) and the
// scalar reference kernel (x_scalar; for M > 1 the scalar kernel runs on 1/16
// of the rows and its time is scaled by 16, since its cost is linear in rows).
//
//   kernels_bench --benchmark_filter='M:512/K:4096/N:4096'   one shape
//
// Shapes: K = N = 4096 and K = 4096, N = 11008 (Llama-7B attention and MLP),
// M = 1 (decode, GEMV) and M = 512 (prefill, GEMM); 1 and 2 threads (output
// rows split as the runtime splits them). Counters: weight_GBps (bytes of
// packed weights read per second), GMACps, x_sgemm, x_scalar. Wall time,
// because the 2-thread runs use two cores.
//
// q4k_* and q6k_* are GGUF Q4_K and Q6_K as model/gguf_packing repacks them
// (two-level scales, one zero point); their x_float_params = time of the same
// values with float group parameters (the repacking before two-level
// scales) / time two-level, both on one thread in thread CPU time, timed
// alternately in one run (robust to a shared machine).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/activations.h"
#include "kernels/cpu_target.h"
#include "kernels/matmul.h"
#include "kernels/packed_matrix.h"
#include "runtime/fp32_ops.h"

namespace {

using qf::kernels::ActivationPrecision;
using qf::kernels::Activations;
using qf::kernels::PackedMatrix;
using qf::kernels::Target;

struct KernelType {
  const char* name;
  int bits;
  int64_t group;  // 0: one group per row
  bool asym;
  ActivationPrecision precision;
  bool gemm;  // also benchmarked at M = 512
  int64_t super_groups = 0;  // > 0: two-level parameters (GGUF K types): mins with asym, one zero point
};

const std::vector<KernelType> kTypes = {
    {"w8a8", 8, 0, false, ActivationPrecision::Int8, true},
    {"w8a32", 8, 0, false, ActivationPrecision::F32, true},
    {"w4a32_g128", 4, 128, false, ActivationPrecision::F32, true},
    {"w4a8_g128", 4, 128, false, ActivationPrecision::Int8, true},
    {"w4a8_g32_asym", 4, 32, true, ActivationPrecision::Int8, false},
    {"w3a8_g128", 3, 128, false, ActivationPrecision::Int8, false},
    {"w3a32_g128", 3, 128, false, ActivationPrecision::F32, false},
    {"w2a8_g128_asym", 2, 128, true, ActivationPrecision::Int8, false},
    {"w2a32_g128_asym", 2, 128, true, ActivationPrecision::F32, false},
    {"q4k_a32", 4, 32, true, ActivationPrecision::F32, false, 8},
    {"q4k_a8", 4, 32, true, ActivationPrecision::Int8, false, 8},
    {"q6k_a32", 8, 16, false, ActivationPrecision::F32, false, 16},
    {"q6k_a8", 8, 16, false, ActivationPrecision::Int8, false, 16},
};

double seconds(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best of `reps` after one warm-up run.
double best_seconds(int reps, const std::function<void()>& f) {
  f();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) best = std::min(best, seconds(f));
  return best;
}

// `float_twin`: a two-level type's values with float group parameters.
const PackedMatrix& weights(const KernelType& t, int64_t n, int64_t k, bool float_twin = false) {
  static std::map<std::tuple<std::string, int64_t, int64_t, bool>, PackedMatrix> cache;
  auto key = std::make_tuple(std::string(t.name), n, k, float_twin);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const bool two_level = t.super_groups > 0 && !float_twin, mins = t.super_groups > 0 && t.asym;
  const int levels = 1 << t.bits;
  qf::kernels::GroupParams params{.mins = mins};
  if (two_level) params.super_groups = t.super_groups, params.uniform_zero = t.bits == 8 ? 128 : 0;
  PackedMatrix w(t.bits, n, k, t.group > 0 ? t.group : k, params);
  std::mt19937 rng(7);
  std::vector<uint8_t> codes(static_cast<size_t>(k));
  const auto groups = static_cast<size_t>(w.groups());
  std::vector<float> scales(groups), mn(mins ? groups : 0);
  std::vector<uint8_t> zeros(groups);
  // Two-level values: sub-parameters of 6 bits times one super-parameter per super-block.
  const int64_t per = t.super_groups > 0 ? t.super_groups : 1, supers = (w.groups() + per - 1) / per;
  std::vector<int8_t> sub(groups);
  std::vector<uint8_t> sub_min(mins ? groups : 0);
  std::vector<float> super(static_cast<size_t>(supers)), super_min(mins ? super.size() : 0);
  for (int64_t r = 0; r < n; ++r) {
    for (auto& c : codes) c = static_cast<uint8_t>(t.bits == 8 ? 1 + rng() % 255 : rng() % levels);
    if (t.super_groups == 0) {
      for (auto& s : scales) s = 0.001f * static_cast<float>(1 + rng() % 100);
      for (auto& z : zeros)
        z = static_cast<uint8_t>(t.bits == 8 ? 128 : (t.asym ? rng() % levels : levels / 2));
      w.set_row(r, codes, scales, zeros);
      continue;
    }
    for (auto& v : sub) v = static_cast<int8_t>(rng() % 64);
    for (auto& v : sub_min) v = static_cast<uint8_t>(rng() % 64);
    for (auto& v : super) v = 1e-4f * static_cast<float>(1 + rng() % 100);
    for (auto& v : super_min) v = 1e-4f * static_cast<float>(1 + rng() % 100);
    std::fill(zeros.begin(), zeros.end(), static_cast<uint8_t>(t.bits == 8 ? 128 : 0));
    if (two_level) {
      w.set_row(r, codes, qf::kernels::TwoLevelRow{sub, super, sub_min, super_min}, zeros);
      continue;
    }
    for (size_t g = 0; g < groups; ++g) {
      scales[g] = super[g / static_cast<size_t>(per)] * static_cast<float>(sub[g]);
      if (mins) mn[g] = super_min[g / static_cast<size_t>(per)] * static_cast<float>(sub_min[g]);
    }
    w.set_row(r, codes, scales, zeros, mn);
  }
  return cache.emplace(key, std::move(w)).first->second;
}

std::vector<float> random_floats(size_t n) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// cblas_sgemm of the same problem (x [M, K] times w^T, w [N, K]), best of a few.
double sgemm_seconds(int64_t m, int64_t k, int64_t n, int threads) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int>, double> cache;
  const auto key = std::make_tuple(m, k, n, threads);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const std::vector<float> x = random_floats(static_cast<size_t>(m * k));
  const std::vector<float> w = random_floats(static_cast<size_t>(n * k));
  std::vector<float> y(static_cast<size_t>(m * n));
  qf::runtime::fp32::set_blas_threads(threads);
  const double s = best_seconds(m == 1 ? 10 : 2, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                1.0f, x.data(), static_cast<int>(k), w.data(), static_cast<int>(k), 0.0f, y.data(),
                static_cast<int>(n));
  });
  return cache[key] = s;
}

void run_rows(qf::ThreadPool& pool, Target target, const PackedMatrix& w, const Activations& a,
              ActivationPrecision p, float* y, int64_t ldy, int64_t rows) {
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  pool.parallel_for(blocks, [&](int64_t b0, int64_t b1) {
    qf::kernels::matmul(target, w, a, p, y, ldy, b0 * kBlock, std::min(rows, b1 * kBlock), false);
  });
}

// The scalar kernel on one thread; for M > 1 on 1/16 of the rows, scaled.
double scalar_seconds(const KernelType& t, const PackedMatrix& w, const Activations& a, int64_t m) {
  static std::map<std::tuple<std::string, int64_t, int64_t, int64_t>, double> cache;
  const auto key = std::make_tuple(std::string(t.name), m, w.cols(), w.rows());
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const int64_t rows = m == 1 ? w.rows() : w.rows() / 16;
  std::vector<float> y(static_cast<size_t>(m * w.rows()));
  const double s = best_seconds(m == 1 ? 3 : 1, [&] {
    qf::kernels::matmul(Target::Scalar, w, a, t.precision, y.data(), w.rows(), 0, rows, false);
  });
  return cache[key] = s * static_cast<double>(w.rows()) / static_cast<double>(rows);
}

void BM_Kernel(benchmark::State& state, KernelType t, Target target, int64_t m, int64_t k, int64_t n, int threads) {
  const PackedMatrix& w = weights(t, n, k);
  const std::vector<float> x = random_floats(static_cast<size_t>(m * k));
  Activations a;
  qf::kernels::prepare_activations(a, x.data(), m, k, k, t.precision == ActivationPrecision::Int8);
  std::vector<float> y(static_cast<size_t>(m * n));
  qf::ThreadPool pool(threads);
  for (auto _ : state) {
    run_rows(pool, target, w, a, t.precision, y.data(), n, n);
    benchmark::DoNotOptimize(y.data());
  }
  const double iters = static_cast<double>(state.iterations());
  const double macs = static_cast<double>(m * k * n);
  state.counters["weight_GBps"] = benchmark::Counter(static_cast<double>(w.bytes()) * iters / 1e9,
                                                     benchmark::Counter::kIsRate);
  state.counters["GMACps"] = benchmark::Counter(macs * iters / 1e9, benchmark::Counter::kIsRate);
  // Ratios need this run's own time per iteration: measured once more outside the loop.
  const double mine = best_seconds(2, [&] { run_rows(pool, target, w, a, t.precision, y.data(), n, n); });
  state.counters["x_sgemm"] = sgemm_seconds(m, k, n, threads) / mine;
  if (target != Target::Scalar) state.counters["x_scalar"] = scalar_seconds(t, w, a, m) / mine;
  if (t.super_groups > 0) {
    // On this thread alone, in CPU time (the machine may be shared: CPU time
    // does not count the time others run), alternately, best of seven each.
    const PackedMatrix& twin = weights(t, n, k, true);
    auto cpu_seconds = [&](const PackedMatrix& pm) {
      timespec t0{}, t1{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
      qf::kernels::matmul(target, pm, a, t.precision, y.data(), n, 0, n, false);
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
      return static_cast<double>(t1.tv_sec - t0.tv_sec) + 1e-9 * static_cast<double>(t1.tv_nsec - t0.tv_nsec);
    };
    double two_level = 1e30, floats = 1e30;
    for (int i = 0; i < 7; ++i) {
      two_level = std::min(two_level, cpu_seconds(w));
      floats = std::min(floats, cpu_seconds(twin));
    }
    state.counters["x_float_params"] = floats / two_level;
    state.counters["MB"] = static_cast<double>(w.bytes()) / 1e6;
    state.counters["MB_float_params"] = static_cast<double>(twin.bytes()) / 1e6;
  }
}

void BM_Sgemm(benchmark::State& state, int64_t m, int64_t k, int64_t n, int threads) {
  const std::vector<float> x = random_floats(static_cast<size_t>(m * k));
  const std::vector<float> w = random_floats(static_cast<size_t>(n * k));
  std::vector<float> y(static_cast<size_t>(m * n));
  qf::runtime::fp32::set_blas_threads(threads);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                1.0f, x.data(), static_cast<int>(k), w.data(), static_cast<int>(k), 0.0f, y.data(),
                static_cast<int>(n));
    benchmark::DoNotOptimize(y.data());
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["weight_GBps"] =
      benchmark::Counter(static_cast<double>(n * k) * 4.0 * iters / 1e9, benchmark::Counter::kIsRate);
  state.counters["GMACps"] = benchmark::Counter(static_cast<double>(m * k * n) * iters / 1e9,
                                                benchmark::Counter::kIsRate);
}

void register_all() {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {4096, 11008}};
  for (int threads : {1, 2}) {
    for (const auto& [k, n] : shapes) {
      for (int64_t m : {int64_t{1}, int64_t{512}}) {
        const std::string shape = "/M:" + std::to_string(m) + "/K:" + std::to_string(k) + "/N:" + std::to_string(n) +
                                  "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(("sgemm_f32" + shape).c_str(), BM_Sgemm, m, k, n, threads)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
        for (const KernelType& t : kTypes) {
          if (m > 1 && !t.gemm) continue;
          for (Target target : qf::kernels::supported_targets()) {
            if (target == Target::Scalar && m > 1) continue;  // minutes per call; see x_scalar instead
            const std::string name = std::string(t.name) + "/" + std::string(qf::kernels::target_name(target)) + shape;
            benchmark::RegisterBenchmark(name.c_str(), BM_Kernel, t, target, m, k, n, threads)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
          }
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
