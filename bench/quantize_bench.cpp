// Single-threaded throughput of quantize (incl. packing) and dequantize on a
// 4096 x 4096 fp32 matrix of N(0, 0.02) weights (fixed seed), against memcpy of
// the same buffer. bytes_per_second counts the fp32 side (64 MiB) for every
// benchmark; vs_memcpy is that throughput over memcpy's, measured once at start
// (median of 15 warm copies). Times are CPU time, which keeps them meaningful on a
// machine shared with other work; on an idle one it equals wall time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "quant/quantize.h"

namespace {

constexpr int64_t kRows = 4096;
constexpr int64_t kCols = 4096;
constexpr size_t kBytes = static_cast<size_t>(kRows * kCols) * sizeof(float);

const qf::Tensor& weights() {
  static const qf::Tensor w = [] {
    std::mt19937 rng(20240601);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> v(static_cast<size_t>(kRows * kCols));
    for (auto& x : v) x = normal(rng);
    return qf::Tensor::from_f32(v, {kRows, kCols});
  }();
  return w;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// memcpy bytes per CPU second on this machine: median of 15 warm copies (CPU
// time like the benchmarks, so load from other processes mostly cancels out).
double memcpy_bytes_per_second() {
  static const double bps = [] {
    const float* src = weights().data<float>();
    std::vector<float> dst(static_cast<size_t>(kRows * kCols), 1.0f);
    std::vector<double> seconds;
    for (int i = 0; i < 15; ++i) {
      const double t0 = thread_cpu_seconds();
      std::memcpy(dst.data(), src, kBytes);
      benchmark::DoNotOptimize(dst.data());
      benchmark::ClobberMemory();
      seconds.push_back(thread_cpu_seconds() - t0);
    }
    std::nth_element(seconds.begin(), seconds.begin() + 7, seconds.end());
    return static_cast<double>(kBytes) / seconds[7];
  }();
  return bps;
}

void report(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(kBytes));
  state.counters["vs_memcpy"] = benchmark::Counter(static_cast<double>(kBytes) / memcpy_bytes_per_second(),
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Memcpy(benchmark::State& state) {
  const float* src = weights().data<float>();
  std::vector<float> dst(static_cast<size_t>(kRows * kCols), 1.0f);
  for (auto _ : state) {
    std::memcpy(dst.data(), src, kBytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  report(state);
}

void BM_Quantize(benchmark::State& state, const std::string& spec) {
  const qf::Tensor& w = weights();
  const auto scheme = qf::quant::Scheme::parse(spec);
  for (auto _ : state) {
    auto q = qf::quant::quantize(w, scheme);
    benchmark::DoNotOptimize(q.codes.data<uint8_t>());
  }
  report(state);
}

// Into a reused buffer, as memcpy writes into one.
void BM_Dequantize(benchmark::State& state, const std::string& spec) {
  const auto q = qf::quant::quantize(weights(), qf::quant::Scheme::parse(spec));
  std::vector<float> out(static_cast<size_t>(kRows * kCols), 1.0f);
  for (auto _ : state) {
    qf::quant::dequantize_into(q, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  report(state);
}

// Returning a fresh tensor: adds allocating and zero-filling 64 MiB.
void BM_DequantizeAlloc(benchmark::State& state, const std::string& spec) {
  const auto q = qf::quant::quantize(weights(), qf::quant::Scheme::parse(spec));
  for (auto _ : state) {
    auto d = qf::quant::dequantize(q);
    benchmark::DoNotOptimize(d.data<float>());
  }
  report(state);
}

}  // namespace

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, int8_channel, std::string("int8:channel"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, int4_g128_sym, std::string("int4:g128"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, int4_g128_asym, std::string("int4:g128:asym"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, nf4_g64, std::string("nf4:g64"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, fp8e4m3_tensor, std::string("fp8e4m3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, int8_channel, std::string("int8:channel"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, int4_g128_sym, std::string("int4:g128"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, int4_g128_asym, std::string("int4:g128:asym"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, nf4_g64, std::string("nf4:g64"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DequantizeAlloc, int4_g128_sym, std::string("int4:g128"))->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
