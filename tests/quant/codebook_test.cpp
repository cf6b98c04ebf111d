#include "quant/codebook.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/float_formats.h"
#include "quant/metrics.h"
#include "quant/packing.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace qf::quant {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kFloatInf = std::numeric_limits<float>::infinity();

std::vector<uint8_t> unpacked_codes(const QuantizedTensor& q) {
  std::vector<uint8_t> all;
  const int64_t bytes = q.codes.cols();
  for (int64_t r = 0; r < q.rows(); ++r) {
    std::vector<uint8_t> codes(static_cast<size_t>(q.cols()));
    unpack_codes({q.codes.data<uint8_t>() + r * bytes, static_cast<size_t>(bytes)}, q.scheme.bits, codes);
    all.insert(all.end(), codes.begin(), codes.end());
  }
  return all;
}

// Every finite x must encode to a value at least as close as any other table value.
void expect_nearest(const Codebook& cb, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int i = 0; i < 20000; ++i) {
    const float x = dist(rng);
    const double got = std::fabs(static_cast<double>(x) - cb.value(cb.encode(x)));
    for (const float v : cb.values()) {
      if (std::isnan(v)) continue;
      ASSERT_LE(got, std::fabs(static_cast<double>(x) - v)) << "x=" << x;
    }
  }
}

TEST(NF4, PublishedTableEncodesAndDecodesExactly) {
  const Codebook& cb = Codebook::get(Format::NF4);
  EXPECT_EQ(cb.bits(), 4);
  EXPECT_EQ(cb.max_abs(), 1.0f);
  ASSERT_EQ(cb.values().size(), 16u);
  for (uint8_t c = 0; c < 16; ++c) {
    EXPECT_EQ(cb.value(c), kNF4Values[c]);
    EXPECT_EQ(cb.encode(kNF4Values[c]), c);
  }
  EXPECT_EQ(cb.value(7), 0.0f);
  EXPECT_EQ(cb.value(0), -1.0f);
  EXPECT_EQ(cb.value(15), 1.0f);
  EXPECT_EQ(cb.value(1), -0.6961928009986877f);
  EXPECT_EQ(cb.value(14), 0.7229568362236023f);
}

TEST(NF4, QuantizeTableThroughTensorApi) {
  // One group whose absmax is 1 (scale 1) and one scaled by 0.5 (scale 0.5): exact.
  std::vector<float> values(kNF4Values.begin(), kNF4Values.end());
  for (float v : kNF4Values) values.push_back(0.5f * v);
  const Tensor w = Tensor::from_f32(values, {2, 16});
  const QuantizedTensor q = quantize(w, Scheme::parse("nf4:g16"));
  const auto codes = unpacked_codes(q);
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(codes[i], i % 16);
  EXPECT_EQ(stored_params(q).params[0].scale, 1.0f);
  EXPECT_EQ(stored_params(q).params[1].scale, 0.5f);
  const Tensor d = dequantize(q);
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(d.data<float>()[i], values[i]);
}

TEST(NF4, NearestWithTiesTowardZero) {
  const Codebook& cb = Codebook::get(Format::NF4);
  expect_nearest(cb, -1.3f, 1.3f, 1);
  const float up = kNF4Values[8] / 2;    // exactly between 0 and the first positive value
  const float down = kNF4Values[6] / 2;  // exactly between the last negative value and 0
  EXPECT_EQ(cb.encode(up), 7);
  EXPECT_EQ(cb.encode(std::nextafter(up, 1.0f)), 8);
  EXPECT_EQ(cb.encode(down), 7);
  EXPECT_EQ(cb.encode(std::nextafter(down, -1.0f)), 6);
  EXPECT_EQ(cb.encode(5.0f), 15);
  EXPECT_EQ(cb.encode(-5.0f), 0);
}

TEST(FP4, E2M1Table) {
  const Codebook& cb = Codebook::get(Format::FP4);
  const float mags[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  EXPECT_EQ(cb.max_abs(), 6.0f);
  for (uint8_t c = 0; c < 8; ++c) {
    EXPECT_EQ(cb.value(c), mags[c]);
    EXPECT_EQ(cb.value(c | 8), -mags[c]);
    EXPECT_EQ(cb.encode(mags[c]), c);
    EXPECT_EQ(cb.encode(-mags[c]), c | 8);
  }
  EXPECT_TRUE(std::signbit(cb.value(8)));  // -0
}

TEST(FP4, RoundsToNearestEvenAndSaturates) {
  const Codebook& cb = Codebook::get(Format::FP4);
  expect_nearest(cb, -7.0f, 7.0f, 2);
  EXPECT_EQ(cb.encode(0.25f), 0x0);  // 0 | 0.5 -> 0 (even)
  EXPECT_EQ(cb.encode(0.75f), 0x2);  // 0.5 | 1 -> 1
  EXPECT_EQ(cb.encode(1.25f), 0x2);  // 1 | 1.5 -> 1
  EXPECT_EQ(cb.encode(1.75f), 0x4);  // 1.5 | 2 -> 2
  EXPECT_EQ(cb.encode(2.5f), 0x4);   // 2 | 3 -> 2
  EXPECT_EQ(cb.encode(3.5f), 0x6);   // 3 | 4 -> 4
  EXPECT_EQ(cb.encode(5.0f), 0x6);   // 4 | 6 -> 4
  EXPECT_EQ(cb.encode(-5.0f), 0xE);
  EXPECT_EQ(cb.encode(-0.25f), 0x8);  // keeps the sign, as OCP conversion does
  EXPECT_EQ(cb.encode(std::nextafter(5.0f, 6.0f)), 0x7);
  EXPECT_EQ(cb.encode(7.0f), 0x7);
  EXPECT_EQ(cb.encode(1e9f), 0x7);
  EXPECT_EQ(cb.encode(-1e9f), 0xF);
}

TEST(FP8, E4M3MatchesOcpTable) {
  const Codebook& cb = Codebook::get(Format::FP8E4M3);
  EXPECT_EQ(cb.max_abs(), 448.0f);
  EXPECT_EQ(cb.encode(448.0f), 0x7E);
  EXPECT_EQ(cb.encode(-448.0f), 0xFE);
  EXPECT_EQ(cb.encode(1.0f), 0x38);
  EXPECT_EQ(cb.encode(-2.0f), 0xC0);
  EXPECT_EQ(cb.encode(0.0f), 0x00);
  EXPECT_EQ(cb.encode(std::ldexp(1.0f, -6)), 0x08);  // smallest normal
  EXPECT_EQ(cb.encode(std::ldexp(1.0f, -9)), 0x01);  // smallest subnormal
  EXPECT_EQ(cb.encode(500.0f), 0x7E);                // saturates
  EXPECT_EQ(cb.encode(-500.0f), 0xFE);
  EXPECT_EQ(cb.encode(kFloatInf), 0x7E);
  EXPECT_EQ(cb.encode(kNaN), 0x7F);
  EXPECT_EQ(cb.encode(-kNaN), 0xFF);
  EXPECT_TRUE(std::isnan(cb.value(0x7F)));
  EXPECT_TRUE(std::isnan(cb.value(0xFF)));
  EXPECT_EQ(cb.value(0x7E), 448.0f);
  EXPECT_EQ(cb.value(0x01), std::ldexp(1.0f, -9));
  // Ties to even: 1.0625 is between 1.0 (0x38) and 1.125 (0x39).
  EXPECT_EQ(cb.encode(1.0625f), 0x38);
  EXPECT_EQ(cb.encode(1.1875f), 0x3A);  // between 0x39 and 1.25 (0x3A)
  EXPECT_EQ(cb.encode(std::ldexp(1.0f, -10)), 0x00);      // half the smallest subnormal
  EXPECT_EQ(cb.encode(3 * std::ldexp(1.0f, -10)), 0x02);  // between 0x01 and 0x02
  EXPECT_EQ(cb.encode(464.0f), 0x7E);  // between 448 and (absent) 480: saturates
  for (uint32_t c = 0; c < 256; ++c) {
    const float v = cb.value(static_cast<uint8_t>(c));
    ASSERT_EQ(std::bit_cast<uint32_t>(v), std::bit_cast<uint32_t>(f8e4m3_to_f32(static_cast<uint8_t>(c)))) << c;
    if (!std::isnan(v)) {
      ASSERT_EQ(cb.encode(v), c) << c;
    }
  }
}

TEST(FP8, E5M2MatchesOcpTable) {
  const Codebook& cb = Codebook::get(Format::FP8E5M2);
  EXPECT_EQ(cb.max_abs(), 57344.0f);
  EXPECT_EQ(cb.encode(57344.0f), 0x7B);
  EXPECT_EQ(cb.encode(1.0f), 0x3C);
  EXPECT_EQ(cb.encode(-1.0f), 0xBC);
  EXPECT_EQ(cb.encode(kFloatInf), 0x7B);  // saturates
  EXPECT_EQ(cb.encode(-kFloatInf), 0xFB);
  EXPECT_EQ(cb.encode(1e6f), 0x7B);
  EXPECT_TRUE(std::isnan(cb.value(cb.encode(kNaN))));
  EXPECT_EQ(cb.encode(std::ldexp(1.0f, -16)), 0x01);  // smallest subnormal
  EXPECT_EQ(cb.encode(std::ldexp(1.0f, -14)), 0x04);  // smallest normal
  EXPECT_EQ(cb.encode(1.125f), 0x3C);                 // tie between 1.0 and 1.25 -> even
  EXPECT_EQ(cb.encode(1.375f), 0x3E);                 // tie between 1.25 and 1.5 -> even
  EXPECT_TRUE(std::isinf(cb.value(0x7C)));
  for (uint32_t c = 0; c < 256; ++c) {
    const float v = cb.value(static_cast<uint8_t>(c));
    ASSERT_EQ(std::bit_cast<uint32_t>(v), std::bit_cast<uint32_t>(f8e5m2_to_f32(static_cast<uint8_t>(c)))) << c;
    if (std::isfinite(v)) {
      ASSERT_EQ(cb.encode(v), c) << c;
    }
  }
}

TEST(FP8, PerTensorAmaxScale) {
  const Tensor w = testing::random_weights(16, 64, 8);
  for (const char* spec : {"fp8e4m3", "fp8e5m2"}) {
    const Scheme s = Scheme::parse(spec);
    const QuantizedTensor q = quantize(w, s);
    const Codebook& cb = Codebook::get(s.format);
    EXPECT_EQ(q.scales.shape(), (Shape{1, 1}));
    EXPECT_EQ(q.codes.shape(), (Shape{16, 64}));
    float amax = 0;
    for (float x : w.to_f32_vector()) amax = std::max(amax, std::fabs(x));
    const float scale = stored_params(q).params[0].scale;
    EXPECT_EQ(scale, static_cast<float>(static_cast<double>(amax) / cb.max_abs())) << spec;
    const Tensor d = dequantize(q);
    const int mant_bits = s.format == Format::FP8E4M3 ? 3 : 2;
    const float min_normal = s.format == Format::FP8E4M3 ? std::ldexp(1.0f, -6) : std::ldexp(1.0f, -14);
    for (int64_t i = 0; i < w.numel(); ++i) {
      const float x = w.data<float>()[i], y = d.data<float>()[i];
      // Half an ulp of the element's binade, or half a subnormal step.
      const float bound = std::max(std::fabs(x) * std::ldexp(1.0f, -(mant_bits + 1)),
                                   scale * min_normal * std::ldexp(1.0f, -(mant_bits + 1)));
      ASSERT_LE(std::fabs(y - x), bound * 1.0001f) << spec << " " << x;
    }
  }
}

TEST(Ternary, CodesAndTies) {
  const Codebook& cb = Codebook::get(Format::Ternary);
  EXPECT_EQ(cb.bits(), 2);
  EXPECT_EQ(cb.encode(-1.0f), 0);
  EXPECT_EQ(cb.encode(0.0f), 1);
  EXPECT_EQ(cb.encode(1.0f), 2);
  EXPECT_EQ(cb.encode(0.5f), 1);  // ties toward zero
  EXPECT_EQ(cb.encode(-0.5f), 1);
  EXPECT_EQ(cb.encode(std::nextafter(0.5f, 1.0f)), 2);
  EXPECT_EQ(cb.encode(std::nextafter(-0.5f, -1.0f)), 0);
  EXPECT_EQ(cb.value(3), 0.0f);  // unused code
  expect_nearest(cb, -2.0f, 2.0f, 3);
}

TEST(Binary, CodesAndTies) {
  const Codebook& cb = Codebook::get(Format::Binary);
  EXPECT_EQ(cb.bits(), 1);
  EXPECT_EQ(cb.encode(-0.3f), 0);
  EXPECT_EQ(cb.encode(0.3f), 1);
  EXPECT_EQ(cb.encode(0.0f), 1);
  EXPECT_EQ(cb.encode(-0.0f), 1);
  EXPECT_EQ(cb.encode(-std::numeric_limits<float>::denorm_min()), 0);
}

// Squared error of `row` under nearest-value encoding with `scale`.
double sse_with_scale(const std::vector<float>& row, float scale, const Scheme& s) {
  double e = 0;
  for (float x : row) {
    const double d = x - fake_quantize_value(x, {scale, 0}, s);
    e += d * d;
  }
  return e;
}

TEST(Ternary, ThresholdScaleBeatsAbsmaxAndIsNearOptimal) {
  const Scheme s = Scheme::parse("ternary");
  const Tensor w = testing::random_weights(8, 512, 21);
  const QuantizedTensor q = quantize(w, s);
  for (uint8_t c : unpacked_codes(q)) ASSERT_LE(c, 2);
  const ParamGrid params = stored_params(q);
  const Tensor d = dequantize(q);
  for (int64_t r = 0; r < 8; ++r) {
    const std::vector<float> row(w.data<float>() + r * 512, w.data<float>() + (r + 1) * 512);
    const float chosen = params.row(r)[0].scale;
    const GroupStats st = group_stats(row);
    const double ours = sse_with_scale(row, chosen, s);
    const double absmax = sse_with_scale(row, st.absmax, s);
    EXPECT_LT(ours, 0.5 * absmax) << "row " << r;
    double best = ours;
    for (int k = 1; k <= 400; ++k) best = std::min(best, sse_with_scale(row, st.absmax * k / 400.0f, s));
    EXPECT_LE(ours, best * 1.01) << "row " << r;
    // The tensor API gives the same reconstruction.
    for (int64_t c = 0; c < 512; ++c) {
      ASSERT_EQ(d.data<float>()[r * 512 + c], fake_quantize_value(row[static_cast<size_t>(c)], {chosen, 0}, s));
    }
  }
  const Tensor absmax_fq = fake_quantize(w, s, [&] {
    ParamGrid g = choose_params(w, s);
    for (int64_t r = 0; r < 8; ++r) {
      const std::vector<float> row(w.data<float>() + r * 512, w.data<float>() + (r + 1) * 512);
      const GroupStats st = group_stats(row);
      g.row(r)[0] = group_params_from_range(-st.absmax, st.absmax, s);
    }
    return g;
  }());
  const auto ref = w.to_f32_vector();
  EXPECT_LT(measure_error(ref, d.to_f32_vector()).mse, measure_error(ref, absmax_fq.to_f32_vector()).mse);
}

TEST(Binary, MeanAbsScaleBeatsAbsmax) {
  const Scheme s = Scheme::parse("binary:g128");
  const Tensor w = testing::random_weights(4, 512, 22);
  const QuantizedTensor q = quantize(w, s);
  for (uint8_t c : unpacked_codes(q)) ASSERT_LE(c, 1);
  EXPECT_EQ(q.codes.shape(), (Shape{4, 64}));
  const ParamGrid params = stored_params(q);
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t g = 0; g < 4; ++g) {
      const float* x = w.data<float>() + r * 512 + g * 128;
      double mean = 0;
      for (int i = 0; i < 128; ++i) mean += std::fabs(x[i]);
      mean /= 128;
      EXPECT_FLOAT_EQ(params.row(r)[static_cast<size_t>(g)].scale, static_cast<float>(mean));
      const std::vector<float> group(x, x + 128);
      const float amax = group_stats(group).absmax;
      EXPECT_LT(sse_with_scale(group, static_cast<float>(mean), s), sse_with_scale(group, amax, s));
    }
  }
}

TEST(Ternary, DegenerateGroups) {
  std::vector<float> zeros(32, 0.0f);
  const Tensor z = Tensor::from_f32(zeros, {2, 16});
  for (const char* spec : {"ternary", "ternary:tensor", "binary", "binary:g4:f16scale", "nf4:g8", "fp4", "fp8e4m3"}) {
    const Tensor d = dequantize(quantize(z, Scheme::parse(spec)));
    for (float v : d.to_f32_vector()) EXPECT_LE(std::fabs(v), 1e-7f) << spec;
  }
  // A constant group: ternary reproduces it exactly.
  const Tensor c = Tensor::from_f32(std::vector<float>(8, -0.75f), {1, 8});
  for (float v : dequantize(quantize(c, Scheme::parse("ternary"))).to_f32_vector()) EXPECT_EQ(v, -0.75f);
}

TEST(Codebook, AbsmaxSchemesNeverClip) {
  const Tensor w = testing::random_weights(6, 100, 17);
  for (const char* spec : {"nf4", "nf4:g32:f16scale", "fp4:g16:pow2scale", "fp8e4m3:channel", "fp8e5m2:g64"}) {
    const Scheme s = Scheme::parse(spec);
    const QuantizedTensor q = quantize(w, s);
    const ParamGrid params = stored_params(q);
    const Tensor d = dequantize(q);
    const float table_max = Codebook::get(s.format).max_abs();
    for (int64_t r = 0; r < 6; ++r) {
      for (int64_t col = 0; col < 100; ++col) {
        const float scale = params.row(r)[static_cast<size_t>(col / s.values_per_scale(100))].scale;
        const float x = w.data<float>()[r * 100 + col];
        ASSERT_LE(std::fabs(x), scale * table_max * 1.0001f) << spec;
        // Half the widest gap between table values bounds the error: NF4 -0.6962 - -1,
        // E2M1 6 - 4, E4M3 448 - 416, E5M2 57344 - 49152.
        const float gap = s.format == Format::NF4 ? 0.3039f : s.format == Format::FP4 ? 2.0f : table_max / 7;
        ASSERT_LE(std::fabs(d.data<float>()[r * 100 + col] - x), scale * gap / 2 * 1.0001f) << spec;
      }
    }
  }
}

}  // namespace
}  // namespace qf::quant
