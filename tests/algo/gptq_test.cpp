// GPTQ against round-to-nearest, against an independent float64 numpy
// implementation (gptq_reference.py), and on the awkward inputs: dead and
// rank-deficient inputs, act_order, ragged groups, bad arguments.
#include "algo/gptq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "quant/quantize.h"
#include "runtime/fp32_ops.h"
#include "temp_dir.h"
#include "numpy_python.h"
#include "error_of.h"

namespace qf::algo {
namespace {

using quant::Scheme;

// Normal numbers from Box-Muller on mt19937_64: the same on every standard library.
class NormalRng {
 public:
  explicit NormalRng(uint64_t seed) : rng_(seed) {}
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  float normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  std::mt19937_64 rng_;
};

// Calibration inputs [tokens, in] with correlated channels (a shared low-rank
// part plus noise), per-channel spreads e^U(-spread, spread), and a few
// outlier channels 10x larger, as transformer activations have.
std::vector<float> calibration_inputs(int64_t tokens, int64_t in, uint64_t seed, double spread = 0.5) {
  NormalRng rng(seed);
  constexpr int64_t kLatent = 16;
  std::vector<float> mix(static_cast<size_t>(kLatent * in));
  for (auto& m : mix) m = rng.normal();
  std::vector<float> scale(static_cast<size_t>(in));
  for (int64_t c = 0; c < in; ++c) {
    scale[static_cast<size_t>(c)] = static_cast<float>(std::exp(spread * (2.0 * rng.uniform() - 1.0)));
    if (c % 61 == 7) scale[static_cast<size_t>(c)] *= 10.0f;
  }
  std::vector<float> x(static_cast<size_t>(tokens * in));
  std::vector<float> z(kLatent);
  for (int64_t t = 0; t < tokens; ++t) {
    for (auto& v : z) v = rng.normal();
    for (int64_t c = 0; c < in; ++c) {
      float v = 0.7f * rng.normal();
      for (int64_t l = 0; l < kLatent; ++l) v += 0.3f * z[static_cast<size_t>(l)] * mix[static_cast<size_t>(l * in + c)];
      x[static_cast<size_t>(t * in + c)] = v * scale[static_cast<size_t>(c)];
    }
  }
  return x;
}

std::vector<double> hessian_of(const std::vector<float>& x, int64_t in) {
  const int64_t tokens = static_cast<int64_t>(x.size()) / in;
  std::vector<double> h(static_cast<size_t>(in * in), 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = &x[static_cast<size_t>(t * in)];
    for (int64_t i = 0; i < in; ++i) {
      const double xi = row[i];
      if (xi == 0.0) continue;
      double* hi = &h[static_cast<size_t>(i * in)];
      for (int64_t j = 0; j < in; ++j) hi[j] += xi * row[j];
    }
  }
  return h;
}

Tensor random_weights(int64_t out, int64_t in, uint64_t seed) {
  NormalRng rng(seed);
  std::vector<float> w(static_cast<size_t>(out * in));
  for (auto& v : w) v = 0.05f * rng.normal();
  return Tensor::from_f32(w, {out, in});
}

// ||X W^T - X Q^T||_F, through H = X^T X: sqrt(sum over rows d^T H d), d = w - q.
double output_error(const Tensor& w, const Tensor& q, const std::vector<double>& h) {
  const int64_t rows = w.rows(), in = w.cols();
  double total = 0.0;
  std::vector<double> d(static_cast<size_t>(in));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      d[static_cast<size_t>(c)] = static_cast<double>(w.data<float>()[r * in + c]) - q.data<float>()[r * in + c];
    }
    for (int64_t i = 0; i < in; ++i) {
      double hd = 0.0;
      for (int64_t j = 0; j < in; ++j) hd += h[static_cast<size_t>(i * in + j)] * d[static_cast<size_t>(j)];
      total += d[static_cast<size_t>(i)] * hd;
    }
  }
  return std::sqrt(total);
}

using test::expect_error;

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.empty() || b.empty()) return a.empty() == b.empty();
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

// The dequantized result lies on its own grid: quantizing it again with the
// stored parameters reproduces it bit for bit (so quantize() kept GPTQ's
// on-grid values exactly).
void expect_on_grid(const quant::QuantizedTensor& q) {
  const Tensor deq = quant::dequantize(q);
  const quant::QuantizedTensor again = quant::quantize(deq, q.scheme, quant::stored_params(q));
  EXPECT_TRUE(same_bytes(again.codes, q.codes)) << "codes change when re-quantized";
  const Tensor deq2 = quant::dequantize(again);
  EXPECT_EQ(std::memcmp(deq.bytes(), deq2.bytes(), deq.nbytes()), 0) << "values are not on the grid";
}

struct Layer {
  Tensor w;
  std::vector<double> h;
};

Layer random_layer(int64_t out, int64_t in, int64_t tokens, uint64_t seed, double spread = 0.5) {
  return {random_weights(out, in, seed), hessian_of(calibration_inputs(tokens, in, seed + 1, spread), in)};
}

struct RtnCase {
  const char* scheme;
  double min_gain;  // required relative error reduction over RTN
};

class GptqVsRtn : public ::testing::TestWithParam<RtnCase> {};

TEST_P(GptqVsRtn, SmallerOutputErrorThanRoundToNearest) {
  const Layer l = random_layer(64, 256, 512, 11);
  const Scheme s = Scheme::parse(GetParam().scheme);
  const GptqResult r = gptq_quantize(l.w, l.h, s);
  const double gptq = output_error(l.w, quant::dequantize(r.weight), l.h);
  const double rtn = output_error(l.w, quant::fake_quantize(l.w, s), l.h);
  std::printf("  %s: GPTQ %.4g, RTN %.4g (%.1f%% less)\n", GetParam().scheme, gptq, rtn, 100.0 * (1.0 - gptq / rtn));
  EXPECT_LT(gptq, rtn * (1.0 - GetParam().min_gain));
  EXPECT_DOUBLE_EQ(r.damp_used, 0.01);
  EXPECT_GT(r.loss, 0.0);
  EXPECT_EQ(r.weight.scheme, s);
  expect_on_grid(r.weight);
}

INSTANTIATE_TEST_SUITE_P(Schemes, GptqVsRtn,
                         ::testing::Values(RtnCase{"int4:g32", 0.0}, RtnCase{"int3:g32", 0.2},
                                           RtnCase{"int2:g16", 0.2}, RtnCase{"int4:channel", 0.0},
                                           RtnCase{"int4:g32:asym", 0.0}, RtnCase{"int3:g64:asym", 0.2},
                                           RtnCase{"nf4:g64", 0.0}, RtnCase{"int8:tensor", 0.0}));

using test::numpy_python;

template <typename T>
void write_file(const std::string& path, const T* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(T)));
  ASSERT_TRUE(f.good()) << path;
}

struct Reference {
  Tensor q;
  double damp = 0.0;
};

// The dequantized weights gptq_reference.py computes for an integer scheme.
Reference numpy_gptq(const Layer& l, const Scheme& s, const GptqOptions& o) {
  const test::TempDir dir;
  const int64_t rows = l.w.rows(), cols = l.w.cols();
  write_file(dir.file("w.f32"), l.w.data<float>(), static_cast<size_t>(l.w.numel()));
  write_file(dir.file("h.f64"), l.h.data(), l.h.size());
  const int64_t group = s.granularity == quant::Granularity::Group ? s.group_size : 0;
  const std::string command = numpy_python() + " '" + std::string(QF_SOURCE_DIR) + "/tests/algo/gptq_reference.py' " +
                              dir.file("w.f32") + " " + dir.file("h.f64") + " " + std::to_string(rows) + " " +
                              std::to_string(cols) + " " + std::to_string(s.bits) + " " +
                              (s.symmetric ? "sym " : "asym ") + std::to_string(group) + " " +
                              (o.act_order ? "1 " : "0 ") + std::to_string(o.damp) + " " + dir.file("q.f32") + " 2>&1";
  const auto [status, output] = test::run_shell(command);
  EXPECT_EQ(status, 0) << command << "\n" << output;
  std::vector<float> q(static_cast<size_t>(rows * cols));
  std::ifstream f(dir.file("q.f32"), std::ios::binary);
  f.read(reinterpret_cast<char*>(q.data()), static_cast<std::streamsize>(q.size() * sizeof(float)));
  EXPECT_TRUE(f.good()) << "reading the reference output: " << output;
  return {Tensor::from_f32(q, {rows, cols}), std::atof(output.c_str())};
}

struct ReferenceCase {
  const char* scheme;
  int64_t cols;
  bool act_order;
  int64_t block_size;
};

class GptqVsNumpy : public ::testing::TestWithParam<ReferenceCase> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(numpy_python().empty())
        << "no python3 with numpy found (scripts/install-deps.sh installs Debian's python3-numpy)";
  }
};

// Both sides quantize the same columns with the same rules, but ours keeps W
// in float32 and applies the errors in lazy blocks while the reference uses
// float64 and a rank-1 update per column. Values then differ by ~1e-6 of a
// quantization step; only a value that close to a rounding boundary can take
// the other code, and such a flip alters the errors spread over the rest of
// its row, so a few more codes of that row may follow. With 64 x 256 values
// that is expected to happen to at most a row or two: 99% identical codes
// and an output error within 1% leave room for that and nothing else (a
// wrong group rule, permutation or update changes most values).
// Scales chosen from updated weights (dynamic groups) also differ in their
// last bits, so values count as the same code when within 1e-5 relative: a
// different code is at least 1/qmax (> 1/128) away.
TEST_P(GptqVsNumpy, AgreesWithFloat64Reference) {
  const ReferenceCase c = GetParam();
  const Layer l = random_layer(64, c.cols, 512, 23);
  const Scheme s = Scheme::parse(c.scheme);
  const GptqOptions o{.block_size = c.block_size, .act_order = c.act_order};
  const GptqResult r = gptq_quantize(l.w, l.h, s, o);
  const Tensor ours = quant::dequantize(r.weight);
  const Reference ref = numpy_gptq(l, s, o);
  ASSERT_EQ(ref.q.numel(), ours.numel());
  int64_t same = 0;
  for (int64_t i = 0; i < ours.numel(); ++i) {
    const float a = ours.data<float>()[i], b = ref.q.data<float>()[i];
    same += std::fabs(a - b) <= 1e-5f * std::max(std::fabs(a), std::fabs(b));
  }
  const double frac = static_cast<double>(same) / static_cast<double>(ours.numel());
  const double e_ours = output_error(l.w, ours, l.h), e_ref = output_error(l.w, ref.q, l.h);
  std::printf("  %s cols %ld%s block %ld: %.4f%% identical, error %.6g vs %.6g\n", c.scheme,
              static_cast<long>(c.cols), c.act_order ? " act_order" : "", static_cast<long>(c.block_size),
              100.0 * frac, e_ours, e_ref);
  EXPECT_GE(frac, 0.99);
  EXPECT_NEAR(e_ours / e_ref, 1.0, 0.01);
  EXPECT_DOUBLE_EQ(ref.damp, r.damp_used);
}

INSTANTIATE_TEST_SUITE_P(Cases, GptqVsNumpy,
                         ::testing::Values(ReferenceCase{"int4:g32", 256, false, 128},
                                           ReferenceCase{"int3:g32:asym", 256, false, 128},
                                           ReferenceCase{"int3:channel", 256, false, 128},
                                           ReferenceCase{"int4:g32", 256, true, 128},
                                           ReferenceCase{"int3:g32:asym", 256, true, 64},
                                           // groups straddling blocks both ways, and a ragged last group
                                           ReferenceCase{"int4:g32", 256, false, 40},
                                           ReferenceCase{"int3:g64", 256, false, 48},
                                           ReferenceCase{"int4:g32", 172, false, 128}));

TEST(Gptq, ActOrderWithStaticGroupsKeepsThePlainGroupLayout) {
  // Channel spreads over e^[-2.5, 2.5]: diag(H) varies ~150x, where act_order matters.
  const Layer l = random_layer(64, 256, 512, 31, 2.5);
  const Scheme s = Scheme::parse("int3:g32");
  const GptqResult plain = gptq_quantize(l.w, l.h, s);
  const GptqResult act = gptq_quantize(l.w, l.h, s, {.act_order = true});
  EXPECT_EQ(act.weight.scales.shape(), (Shape{64, 8}));
  EXPECT_EQ(act.weight.codes.shape(), plain.weight.codes.shape());
  expect_on_grid(act.weight);
  const double e_plain = output_error(l.w, quant::dequantize(plain.weight), l.h);
  const double e_act = output_error(l.w, quant::dequantize(act.weight), l.h);
  const double e_rtn = output_error(l.w, quant::fake_quantize(l.w, s), l.h);
  std::printf("  act_order %.4g, plain %.4g, RTN %.4g\n", e_act, e_plain, e_rtn);
  EXPECT_LT(e_act, 1.1 * e_plain);
  EXPECT_LT(e_act, 0.8 * e_rtn);
  // Static groups: every group's parameters are those of the original weights.
  const quant::ParamGrid want = quant::choose_params(l.w, s);
  EXPECT_EQ(quant::stored_params(act.weight).params, want.params);
}

TEST(Gptq, DeadInputsGiveZeroColumns) {
  std::vector<float> x = calibration_inputs(512, 128, 41);
  for (int64_t t = 0; t < 512; ++t) x[static_cast<size_t>(t * 128 + 5)] = x[static_cast<size_t>(t * 128 + 100)] = 0;
  const Layer l{random_weights(32, 128, 42), hessian_of(x, 128)};
  for (const char* spec : {"int4:g32", "int4:g32:asym", "int4:channel"}) {
    const GptqResult r = gptq_quantize(l.w, l.h, Scheme::parse(spec), {.act_order = true});
    const Tensor q = quant::dequantize(r.weight);
    for (int64_t row = 0; row < 32; ++row) {
      EXPECT_EQ(q.data<float>()[row * 128 + 5], 0.0f) << spec << " row " << row;
      EXPECT_EQ(q.data<float>()[row * 128 + 100], 0.0f) << spec << " row " << row;
    }
    EXPECT_LT(output_error(l.w, q, l.h), output_error(l.w, quant::fake_quantize(l.w, Scheme::parse(spec)), l.h));
  }
}

TEST(Gptq, RankDeficientHessianWorksThroughDamping) {
  const Layer l = random_layer(32, 256, 100, 51);  // 100 tokens: rank(H) <= 100 < 256
  const Scheme s = Scheme::parse("int4:g32");
  const GptqResult r = gptq_quantize(l.w, l.h, s);
  EXPECT_DOUBLE_EQ(r.damp_used, 0.01);
  EXPECT_LT(output_error(l.w, quant::dequantize(r.weight), l.h),
            output_error(l.w, quant::fake_quantize(l.w, s), l.h));
}

TEST(Gptq, DampingIsRaisedUntilCholeskySucceeds) {
  // Eigenvalues 2.05 and -0.05: not a Gram matrix, but 10% damping (0.1 of
  // mean diag 1) makes it positive definite where 1% does not.
  const Tensor w = Tensor::from_f32(std::vector<float>{0.3f, -0.2f, 0.1f, 0.4f}, {2, 2});
  const std::vector<double> h{1.0, 1.05, 1.05, 1.0};
  const GptqResult r = gptq_quantize(w, h, Scheme::parse("int4:channel"));
  EXPECT_NEAR(r.damp_used, 0.1, 1e-12);
  const std::vector<double> hopeless{1.0, 1e6, 1e6, 1.0};
  expect_error([&] { gptq_quantize(w, hopeless, Scheme::parse("int4:channel")); },
               {"Cholesky", "damping", "not positive semi-definite"});
}

TEST(Gptq, BadInputsAreReported) {
  const Layer l = random_layer(8, 64, 128, 61);
  const Scheme s = Scheme::parse("int4:g32");
  expect_error([&] { gptq_quantize(l.w, std::vector<double>(63 * 63), s); }, {"Hessian has 3969 entries", "64 x 64"});
  Tensor nan_w = l.w.clone();
  nan_w.mutable_data<float>()[3 * 64 + 7] = std::nanf("");
  expect_error([&] { gptq_quantize(nan_w, l.h, s); }, {"weights", "NaN at row 3, column 7"});
  std::vector<double> nan_h = l.h;
  nan_h[2 * 64 + 5] = std::nan("");
  expect_error([&] { gptq_quantize(l.w, nan_h, s); }, {"Hessian", "NaN at [2, 5]"});
  std::vector<double> neg_h = l.h;
  neg_h[9 * 64 + 9] = -1.0;
  expect_error([&] { gptq_quantize(l.w, neg_h, s); }, {"diagonal", "[9, 9]", "negative"});
  expect_error([&] { gptq_quantize(l.w, l.h, s, {.act_order = true, .static_groups = false}); },
               {"act_order", "static groups"});
  expect_error([&] { gptq_quantize(l.w.reshape({8, 4, 16}), l.h, s); }, {"F32 [out, in]", "[8, 4, 16]"});
  expect_error([&] { gptq_quantize(l.w.cast(DType::F16), l.h, s); }, {"F32 [out, in]", "F16"});
  expect_error([&] { gptq_quantize(l.w, l.h, s, {.damp = -0.1}); }, {"damping"});
  expect_error([&] { gptq_quantize(l.w, l.h, s, {.block_size = 0}); }, {"block size"});
}

// Same thread count, same bytes. Across thread counts OpenBLAS's AVX2 and
// AVX-512 kernels (not its generic one) split potrf and sgemm differently and
// round differently in the last bits, so 1 and 2 threads are only close: a
// code can flip where a weight sits on a rounding boundary.
TEST(Gptq, SameBytesForAThreadCountCloseAcrossThreadCounts) {
  const Layer l = random_layer(96, 384, 512, 71);
  const Scheme s = Scheme::parse("int4:g32:asym");
  runtime::fp32::set_blas_threads(1);
  const GptqResult a = gptq_quantize(l.w, l.h, s, {.block_size = 64});
  const GptqResult a2 = gptq_quantize(l.w, l.h, s, {.block_size = 64});
  runtime::fp32::set_blas_threads(2);
  const GptqResult b = gptq_quantize(l.w, l.h, s, {.block_size = 64});
  const GptqResult b2 = gptq_quantize(l.w, l.h, s, {.block_size = 64});
  for (const auto& [x, y] : {std::pair{&a, &a2}, std::pair{&b, &b2}}) {
    EXPECT_TRUE(same_bytes(x->weight.codes, y->weight.codes));
    EXPECT_TRUE(same_bytes(x->weight.scales, y->weight.scales));
    EXPECT_TRUE(same_bytes(x->weight.zero_points, y->weight.zero_points));
    EXPECT_EQ(x->loss, y->loss);
  }
  EXPECT_NEAR(a.loss, b.loss, 1e-4 * a.loss);
  // Packed codes (two to a byte): a flip is a weight on a rounding boundary.
  const std::byte* ca = a.weight.codes.bytes();
  const std::byte* cb = b.weight.codes.bytes();
  const int64_t code_bytes = static_cast<int64_t>(a.weight.codes.nbytes());
  int64_t flips = 0;
  for (int64_t i = 0; i < code_bytes; ++i) flips += ca[i] != cb[i];
  EXPECT_LE(flips, code_bytes / 1000) << flips << " of " << code_bytes << " code bytes differ";
  ASSERT_EQ(a.weight.scales.dtype(), DType::F32);
  const float* sa = a.weight.scales.data<float>();
  const float* sb = b.weight.scales.data<float>();
  for (int64_t i = 0; i < a.weight.scales.numel(); ++i) EXPECT_NEAR(sa[i], sb[i], 1e-5f * std::fabs(sa[i])) << i;
}

TEST(Gptq, RaggedLastGroup) {
  const Layer l = random_layer(64, 172, 512, 81);
  const Scheme s = Scheme::parse("int4:g32");
  const GptqResult r = gptq_quantize(l.w, l.h, s);
  EXPECT_EQ(r.weight.scales.shape(), (Shape{64, 6}));  // 5 x 32 + 12
  expect_on_grid(r.weight);
  EXPECT_LT(output_error(l.w, quant::dequantize(r.weight), l.h),
            output_error(l.w, quant::fake_quantize(l.w, s), l.h));
}

// GPT-2 124M's MLP shapes; run with --gtest_also_run_disabled_tests and
// OPENBLAS_NUM_THREADS=1 for single-core timings.
TEST(Gptq, DISABLED_TimingGpt2Shapes) {
  for (const auto& [out, in] : {std::pair<int64_t, int64_t>{768, 3072}, {3072, 768}}) {
    // A Gram matrix of low rank plus a diagonal: cheap to build at this size, positive definite.
    NormalRng rng(static_cast<uint64_t>(out));
    std::vector<double> h(static_cast<size_t>(in * in), 0.0);
    std::vector<double> v(static_cast<size_t>(in));
    for (int k = 0; k < 32; ++k) {
      for (auto& x : v) x = rng.normal();
      for (int64_t i = 0; i < in; ++i) {
        for (int64_t j = 0; j < in; ++j) h[static_cast<size_t>(i * in + j)] += v[static_cast<size_t>(i)] * v[static_cast<size_t>(j)];
      }
    }
    for (int64_t i = 0; i < in; ++i) h[static_cast<size_t>(i * in + i)] += 1.0 + rng.uniform();
    const Tensor w = random_weights(out, in, 5);
    for (const bool act : {false, true}) {
      // CPU time besides wall time: on a shared machine the wall clock includes waiting.
      const std::clock_t c0 = std::clock();
      const auto t0 = std::chrono::steady_clock::now();
      const GptqResult r = gptq_quantize(w, h, Scheme::parse("int4:g128"), {.act_order = act});
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
      std::printf("  [%ld, %ld] int4:g128%s: %.3f s wall, %.3f s CPU (loss %.4g)\n", static_cast<long>(out),
                  static_cast<long>(in), act ? " act_order" : "", secs, cpu, r.loss);
    }
  }
}

}  // namespace
}  // namespace qf::algo
