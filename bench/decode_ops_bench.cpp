// The per-token work of a decode step outside the matrix products, at
// Llama-1B widths (2048 hidden, 5632 MLP): preparing a matmul input
// (kernels::prepare_activations, with and without int8 quantization) and the
// SwiGLU product (fp32::silu_mul), against the scalar libm loop
// x / (1 + expf(-x)) * up it replaced (x_libm = that loop's time / this one's).
// Single-threaded: decode runs these on one thread while the others wait.
//
//   decode_ops_bench --benchmark_filter=silu
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/activations.h"
#include "runtime/fp32_ops.h"

namespace {

std::vector<float> inputs(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i % 91) * 0.1f - 4.5f;
  return x;
}

void BM_PrepareActivations(benchmark::State& state) {
  const int64_t k = state.range(0);
  const bool int8 = state.range(1) != 0;
  const std::vector<float> x = inputs(k);
  qf::kernels::Activations a;
  for (auto _ : state) {
    qf::kernels::prepare_activations(a, x.data(), 1, k, k, int8);
    benchmark::DoNotOptimize(a.q.data());
  }
}
BENCHMARK(BM_PrepareActivations)->ArgsProduct({{2048, 5632}, {0, 1}})->ArgNames({"k", "int8"})->Unit(benchmark::kMicrosecond);

double libm_silu_seconds(std::vector<float>& gate, const std::vector<float>& up, const std::vector<float>& x) {
  double best = 1e30;
  for (int rep = 0; rep < 200; ++rep) {
    gate = x;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
    benchmark::DoNotOptimize(gate.data());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void BM_SiluMul(benchmark::State& state) {
  const int64_t k = state.range(0);
  const std::vector<float> x = inputs(k), up(static_cast<size_t>(k), 1.0f);
  std::vector<float> gate = x;
  double mine = 1e30;
  for (auto _ : state) {
    state.PauseTiming();
    gate = x;  // the same inputs every time (silu_mul works in place)
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    qf::runtime::fp32::silu_mul(gate.data(), up.data(), k);
    mine = std::min(mine, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(gate.data());
  }
  state.counters["x_libm"] = libm_silu_seconds(gate, up, x) / mine;
}
BENCHMARK(BM_SiluMul)->Arg(2048)->Arg(5632)->ArgName("k")->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
