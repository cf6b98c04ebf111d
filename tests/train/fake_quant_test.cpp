// LSQ fake quantization: the forward is exactly the exported codes'
// dequantization, and the straight-through gradients of weights, scales and
// zero points match finite differences of the surrogate they define (the
// rounding of the current point frozen, its derivative taken as 1), with the
// clamped values exact derivatives of the clamped function.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../model/test_models.h"
#include "quant/quantize.h"
#include "train/adam.h"
#include "train/fake_quant.h"

namespace qf::train {
namespace {

Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  model::testing::Rng r(seed);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (auto& x : v) x = r.normal(0.1f);
  return Tensor::from_f32(v, {rows, cols});
}

TEST(FakeQuant, ForwardIsTheExportedModelBitForBit) {
  for (const char* spec : {"int2:g16:asym", "int3:g32:asym", "int4:g32", "int4:channel:full", "int8:tensor",
                           "int4:g16:f16scale"}) {
    const Tensor w = random_matrix(5, 44, 3);  // 44: a ragged last group for g16 and g32
    FakeQuantParams p = init_fake_quant(w, quant::Scheme::parse(spec));
    // Move the parameters off their RTN values, as training does.
    for (size_t i = 0; i < p.scale.size(); ++i) p.scale[i] *= 0.8f + 0.03f * static_cast<float>(i % 7);
    for (size_t i = 0; i < p.zero.size(); ++i) p.zero[i] += 0.4f * static_cast<float>(i % 3) - 0.4f;
    clamp_fake_quant(p);
    std::vector<float> wq(static_cast<size_t>(w.numel()));
    fake_quant_forward(w.data<float>(), p, wq.data());
    const Tensor deq = quant::dequantize(export_quantized(w.data<float>(), p));
    for (int64_t i = 0; i < w.numel(); ++i) ASSERT_EQ(wq[static_cast<size_t>(i)], deq.data<float>()[i]) << spec << " " << i;
  }
}

TEST(FakeQuant, RefusesCodebookFormats) {
  const Tensor w = random_matrix(2, 64, 1);
  for (const char* spec : {"nf4", "fp8e4m3", "ternary"}) {
    try {
      init_fake_quant(w, quant::Scheme::parse(spec));
      FAIL() << spec;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot train"), std::string::npos) << e.what();
    }
  }
}

// L = sum R * w'. Checks dL/dw, dL/ds (LSQ) and dL/dzero (LSQ+) against
// central differences of the straight-through surrogate.
void check_gradients(const char* spec) {
  const quant::Scheme scheme = quant::Scheme::parse(spec);
  const Tensor wt = random_matrix(4, 40, 5);
  std::vector<float> w(wt.data<float>(), wt.data<float>() + wt.numel());
  FakeQuantParams p = init_fake_quant(wt, scheme);
  // Shrink scales so some values clamp (both branches are exercised).
  for (auto& s : p.scale) s *= 0.7f;
  const auto R = [&] {
    model::testing::Rng r(9);
    std::vector<float> v(w.size());
    for (auto& x : v) x = r.normal(1.0f);
    return v;
  }();
  std::vector<float> dw(w.size()), ds(p.scale.size(), 0.0f), dz(p.zero.size(), 0.0f);
  fake_quant_backward(w.data(), p, R.data(), dw.data(), ds.data(), dz.empty() ? nullptr : dz.data());

  const double qpos = std::max(p.qmax, -p.qmin);
  int clamped = 0, inside = 0;
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t g = 0; g < p.groups; ++g) {
      const int64_t idx = p.index(r, g), b = g * p.group_size, e = std::min(p.cols, b + p.group_size);
      const float s0 = effective_scale(p, idx);
      const float z0 = static_cast<float>(effective_zero(p, idx));
      const float lo = static_cast<float>(p.qmin) - z0, hi = static_cast<float>(p.qmax) - z0;
      // The surrogate of one group as a function of (scale, zero, weights).
      auto surrogate = [&](double s, double z, double dwi, int64_t wi) {
        double total = 0;
        for (int64_t c = b; c < e; ++c) {
          const double x = w[static_cast<size_t>(r * p.cols + c)] + (c == wi ? dwi : 0.0);
          const double v0 = w[static_cast<size_t>(r * p.cols + c)] / static_cast<double>(s0);
          const double r0 = quant::round_clamped(w[static_cast<size_t>(r * p.cols + c)], s0, lo, hi);
          const bool in = v0 >= lo && v0 <= hi;
          // inside: round(v) -> r0 + (v - v0); clamped: the bound minus the zero-point change
          const double q = in ? r0 + (x / s - v0) : r0 - (z - z0);
          total += R[static_cast<size_t>(r * p.cols + c)] * s * q;
        }
        return total;
      };
      const double h = 1e-4 * s0;
      const double fd_s = (surrogate(s0 + h, z0, 0, -1) - surrogate(s0 - h, z0, 0, -1)) / (2 * h);
      const double gscale = 1.0 / std::sqrt(static_cast<double>(e - b) * qpos);
      EXPECT_NEAR(ds[static_cast<size_t>(idx)] / gscale, fd_s, 1e-3 * (1 + std::abs(fd_s))) << spec << " scale " << idx;
      if (!dz.empty()) {
        const double fd_z = (surrogate(s0, z0 + 1e-3, 0, -1) - surrogate(s0, z0 - 1e-3, 0, -1)) / 2e-3;
        EXPECT_NEAR(dz[static_cast<size_t>(idx)] / gscale, fd_z, 1e-3 * (1 + std::abs(fd_z))) << spec << " zero " << idx;
      }
      for (int64_t c = b; c < e; ++c) {
        const double fd_w = (surrogate(s0, z0, 1e-5, c) - surrogate(s0, z0, -1e-5, c)) / 2e-5;
        EXPECT_NEAR(dw[static_cast<size_t>(r * p.cols + c)], fd_w, 1e-3 * (1 + std::abs(fd_w))) << spec;
        (fd_w == 0.0 ? clamped : inside)++;
      }
    }
  }
  EXPECT_GT(clamped, 0) << spec;
  EXPECT_GT(inside, 0) << spec;
}

TEST(FakeQuant, LsqScaleAndWeightGradientsSymmetric) { check_gradients("int3:g16"); }
TEST(FakeQuant, LsqScaleZeroAndWeightGradientsAsymmetric) { check_gradients("int2:g16:asym"); }

// The exact derivative where every value is clamped: w' = s (bound - z) is
// differentiable, and the STE gradient must equal it without any surrogate.
TEST(FakeQuant, ClampedGroupGradientIsExact) {
  const quant::Scheme scheme = quant::Scheme::parse("int2:g8:asym");
  std::vector<float> w = {1.0f, 1.2f, 1.5f, 2.0f, -1.0f, -1.3f, -2.0f, 1.7f};
  FakeQuantParams p = init_fake_quant(Tensor::from_f32(w, {1, 8}), scheme);
  p.scale[0] = 0.01f;  // every value far outside the 4 levels
  p.zero[0] = 1.0f;
  std::vector<float> wq(8), R = {1, -2, 3, 0.5f, -1, 2, 1, -0.5f}, dw(8), ds(1, 0), dz(1, 0);
  auto f = [&](float s, float z) {
    FakeQuantParams q = p;
    q.scale[0] = s;
    q.zero[0] = z;
    fake_quant_forward(w.data(), q, wq.data());
    double t = 0;
    for (int i = 0; i < 8; ++i) t += R[static_cast<size_t>(i)] * wq[static_cast<size_t>(i)];
    return t;
  };
  fake_quant_backward(w.data(), p, R.data(), dw.data(), ds.data(), dz.data());
  const double g = 1.0 / std::sqrt(8.0 * 3.0);
  EXPECT_NEAR(ds[0] / g, (f(0.0101f, 1.0f) - f(0.0099f, 1.0f)) / 0.0002, 1e-3);
  for (float d : dw) EXPECT_EQ(d, 0.0f);
  // The zero point is rounded in the forward: its exact derivative is the
  // STE one scaled by a unit step, -s * sum R.
  EXPECT_NEAR(dz[0] / g, (f(0.01f, 2.0f) - f(0.01f, 1.0f)), 1e-5);
}

TEST(Adam, MatchesTheReferenceUpdate) {
  std::vector<float> p = {1.0f, -2.0f}, g = {0.5f, -0.25f};
  AdamState s;
  adam_step(p.data(), g.data(), 2, s, 0.1, 1);
  // Step 1: mhat = g, vhat = g^2, so each parameter moves by lr * sign(g).
  EXPECT_NEAR(p[0], 0.9f, 1e-6f);
  EXPECT_NEAR(p[1], -1.9f, 1e-6f);
  adam_step(p.data(), g.data(), 2, s, 0.1, 2);
  EXPECT_NEAR(p[0], 0.8f, 1e-5f);
}

}  // namespace
}  // namespace qf::train
