// Decode-shaped matrix-vector products streamed from memory, against the
// STREAM triad bandwidth measured at the start of the same run.
//
// kernels_bench times one matrix over and over, so its weights sit in the
// last-level cache and its GB/s is a cache figure. A decode step instead reads
// every layer once: this benchmark builds the linear layers of
// `qforge bench --synthetic llama-1b` (hidden 2048, MLP 5632, 4 kv heads, 22
// layers, a 32000-row head) as packed matrices with random
// codes, and per iteration multiplies one activation row by all of them in
// order, splitting output rows over the threads in blocks of 16 as the runtime
// does. Counters: weight_GBps (packed bytes read per second) and of_triad
// (that over the triad bandwidth: the bound ratio of qforge bench without the
// rest of the model's work).
//
//   decode_stream_bench --benchmark_filter='w4a8_g128/avx512vnni/threads:2'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "eval/bench.h"
#include "kernels/activations.h"
#include "kernels/cpu_target.h"
#include "kernels/matmul.h"
#include "kernels/packed_matrix.h"
#include "model/linear_layers.h"
#include "model/synthetic.h"

namespace {

using qf::kernels::ActivationPrecision;
using qf::kernels::Activations;
using qf::kernels::PackedMatrix;
using qf::kernels::Target;

struct StreamType {
  const char* name;
  int bits;
  int64_t group;  // 0: one group per row
  bool asym;
  ActivationPrecision precision;
};

const std::vector<StreamType> kTypes = {
    {"w8a8", 8, 0, false, ActivationPrecision::Int8},
    {"w8a32", 8, 0, false, ActivationPrecision::F32},
    {"w4a8_g128", 4, 128, false, ActivationPrecision::Int8},
    {"w4a32_g128", 4, 128, false, ActivationPrecision::F32},
    {"w4a8_g32", 4, 32, false, ActivationPrecision::Int8},
    {"w4a8_g128_asym", 4, 128, true, ActivationPrecision::Int8},
    {"w3a8_g128", 3, 128, false, ActivationPrecision::Int8},
    {"w2a8_g64_asym", 2, 64, true, ActivationPrecision::Int8},
};

struct Shape {
  int64_t rows, cols;
};

// Every linear layer of `qforge bench --synthetic llama-1b`, in the order a
// decode step reads them, then the head.
std::vector<Shape> decode_shapes(const qf::model::ModelConfig& c) {
  std::vector<Shape> all;
  for (const qf::model::LinearLayer& l : qf::model::all_linears(c)) all.push_back({l.out_features, l.in_features});
  all.push_back({c.vocab_size, c.hidden_size});
  return all;
}

// Random codes and scales from a cheap generator: the kernels' speed does not
// depend on the values, and a gigabyte of mt19937 codes would take minutes.
PackedMatrix random_matrix(const StreamType& t, Shape s, uint64_t seed) {
  PackedMatrix w(t.bits, s.rows, s.cols, t.group > 0 ? t.group : s.cols);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const int levels = 1 << t.bits;
  std::vector<uint8_t> codes(static_cast<size_t>(s.cols)), zeros(static_cast<size_t>(w.groups()));
  std::vector<float> scales(static_cast<size_t>(w.groups()));
  for (int64_t r = 0; r < s.rows; ++r) {
    for (auto& c : codes) c = static_cast<uint8_t>(t.bits == 8 ? 1 + next() % 255 : next() % levels);
    for (auto& x : scales) x = 0.001f * static_cast<float>(1 + next() % 100);
    for (auto& z : zeros) z = static_cast<uint8_t>(t.bits == 8 ? 128 : (t.asym ? next() % levels : levels / 2));
    w.set_row(r, codes, scales, zeros);
  }
  return w;
}

double triad_gbps(int threads) {
  static double measured[3] = {0, 0, 0};
  if (measured[threads] == 0) measured[threads] = qf::eval::triad_bandwidth_gbps(threads);
  return measured[threads];
}

void BM_DecodeStream(benchmark::State& state, StreamType t, Target target, int threads) {
  const double bound = triad_gbps(threads);  // before the weights take memory
  const qf::model::ModelConfig c = qf::model::synthetic_config("llama-1b");
  const std::vector<Shape> shapes = decode_shapes(c);
  std::vector<PackedMatrix> ws;
  ws.reserve(shapes.size());
  uint64_t bytes = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    ws.push_back(random_matrix(t, shapes[i], i + 1));
    bytes += ws.back().bytes();
  }
  // Inputs of both widths, prepared once: their cost is the runtime's, not the kernels'.
  const int64_t hidden = c.hidden_size, mlp = c.intermediate_size;
  std::vector<float> x(static_cast<size_t>(std::max(hidden, mlp)));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int64_t>(i * 7919 % 201) - 100) / 37.0f;
  const bool int8 = t.precision == ActivationPrecision::Int8;
  Activations narrow, wide;
  qf::kernels::prepare_activations(narrow, x.data(), 1, hidden, hidden, int8);
  qf::kernels::prepare_activations(wide, x.data(), 1, mlp, mlp, int8);
  int64_t widest = 0;
  for (const Shape& s : shapes) widest = std::max(widest, s.rows);
  std::vector<float> y(static_cast<size_t>(widest));
  qf::ThreadPool pool(threads);
  auto step = [&] {
    for (const PackedMatrix& w : ws) {
      const Activations& a = w.cols() == hidden ? narrow : wide;
      constexpr int64_t kBlock = 16;
      const int64_t rows = w.rows(), blocks = (rows + kBlock - 1) / kBlock;
      pool.parallel_for(blocks, [&](int64_t b0, int64_t b1) {
        qf::kernels::matmul(target, w, a, t.precision, y.data(), rows, b0 * kBlock, std::min(rows, b1 * kBlock),
                            false);
      });
    }
  };
  step();  // warms the pool and the page tables
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    step();
    benchmark::DoNotOptimize(y.data());
  }
  const double loop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double gbps = static_cast<double>(bytes) * static_cast<double>(state.iterations()) / loop_s / 1e9;
  state.counters["weight_GBps"] = gbps;
  state.counters["triad_GBps"] = bound;
  state.counters["of_triad"] = gbps / bound;
  state.counters["weight_MB"] = static_cast<double>(bytes) / 1e6;
}

void register_all() {
  for (int threads : {1, 2}) {
    for (const StreamType& t : kTypes) {
      for (Target target : qf::kernels::supported_targets()) {
        if (target == Target::Scalar) continue;  // seconds per token; kernels_bench has its ratio
        const std::string name = std::string(t.name) + "/" + std::string(qf::kernels::target_name(target)) +
                                 "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), BM_DecodeStream, t, target, threads)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(2.0);
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
