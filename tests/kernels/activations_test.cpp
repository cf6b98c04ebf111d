#include "kernels/activations.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernel_test_util.h"
#include "runtime/activation_quant.h"

namespace qf::kernels {
namespace {

TEST(Activations, PaddedCopiesBlockSumsAndInt8MatchTheSimulatedPath) {
  std::mt19937 rng(3);
  const int64_t rows = 4, cols = 100, ld = 103;
  std::vector<float> x = test::random_activations(rng, rows, ld, false);
  for (int64_t k = 0; k < ld; ++k) x[2 * ld + k] = 0.0f;  // an all-zero row
  Activations a;
  prepare_activations(a, x.data(), rows, cols, ld, true);
  ASSERT_EQ(a.padded_cols, 128);
  ASSERT_TRUE(a.quantized);

  model::ActivationQuant aq;
  aq.mode = model::ActQuantMode::DynamicToken;
  aq.bits = 8;
  for (int64_t m = 0; m < rows; ++m) {
    std::vector<float> fake(static_cast<size_t>(cols));
    runtime::fake_quantize_activations(x.data() + m * ld, 1, cols, aq, fake.data());
    for (int64_t k = 0; k < a.padded_cols; ++k) {
      const float xv = k < cols ? x[m * ld + k] : 0.0f;
      ASSERT_EQ(a.f32_row(m)[k], xv);
      if (k >= cols) {
        ASSERT_EQ(a.q_row(m)[k], 0);
      } else {
        ASSERT_EQ(static_cast<float>(a.q_row(m)[k]) * a.scale[m], fake[k]) << "row " << m << " col " << k;
      }
      ASSERT_GE(a.q_row(m)[k], -127);
    }
    for (int64_t b = 0; b < a.blocks(); ++b) {
      int32_t qs = 0;
      float fs = 0.0f;
      for (int64_t i = 0; i < kSumBlock; ++i) {
        qs += a.q_row(m)[b * kSumBlock + i];
        fs += a.f32_row(m)[b * kSumBlock + i];
      }
      EXPECT_EQ(a.block_sums[m * a.blocks() + b], qs);
      EXPECT_EQ(a.f32_block_sums[m * a.blocks() + b], fs);
    }
  }
  EXPECT_EQ(a.scale[2], 0.0f);
}

TEST(Activations, ReuseRewritesPaddingAndNonFiniteRowsGetANanScale) {
  std::mt19937 rng(4);
  std::vector<float> big = test::random_activations(rng, 3, 128, false);
  Activations a;
  prepare_activations(a, big.data(), 3, 128, 128, true);
  std::vector<float> x = test::random_activations(rng, 2, 70, false);
  x[75] = INFINITY;
  prepare_activations(a, x.data(), 2, 70, 70, true);
  for (int64_t m = 0; m < 2; ++m)
    for (int64_t k = 70; k < 128; ++k) {
      ASSERT_EQ(a.f32_row(m)[k], 0.0f);
      ASSERT_EQ(a.q_row(m)[k], 0);
    }
  EXPECT_FALSE(std::isnan(a.scale[0]));
  EXPECT_TRUE(std::isnan(a.scale[1]));
}

TEST(Activations, ANaNAnywhereInARowGivesANanScale) {
  // Rows of 70: positions 0-63 go through the four-wide loops, 64-69 through the scalar tail.
  for (int64_t pos : {0, 13, 63, 64, 69}) {
    std::vector<float> x(70, 0.5f);
    x[static_cast<size_t>(pos)] = std::nanf("");
    Activations a;
    prepare_activations(a, x.data(), 1, 70, 70, true);
    EXPECT_TRUE(std::isnan(a.scale[0])) << "NaN at " << pos;
    x[static_cast<size_t>(pos)] = -2.0f;  // the row's absolute maximum, negative: code -127
    prepare_activations(a, x.data(), 1, 70, 70, true);
    EXPECT_EQ(a.scale[0], 2.0f / 127.0f);
    EXPECT_EQ(a.q_row(0)[pos], -127) << pos;
  }
}

}  // namespace
}  // namespace qf::kernels
