// Properties of every integer scheme: bits 2..8 (one test per width), each with
// symmetric restricted / symmetric full / asymmetric ranges, tensor / channel /
// group (incl. ragged) granularity and f32 / f16 / pow2 scales.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "quant/affine.h"
#include "quant/packing.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace qf::quant {
namespace {

std::vector<std::string> variants(int bits) {
  std::vector<std::string> out;
  for (const char* range : {"", ":full", ":asym"})
    for (const char* gran : {":tensor", ":channel", ":g16", ":g7"})
      for (const char* scale : {"", ":f16scale", ":pow2scale"})
        out.push_back("int" + std::to_string(bits) + gran + range + scale);
  return out;
}

// Parameterized by the bit width; each test runs over the 36 variants of it
// (3 ranges x 4 granularities x 3 scale formats), named in the failure trace.
class IntScheme : public ::testing::TestWithParam<int> {
 protected:
  Scheme scheme;
  CodeRange range{};
  int32_t bias = 0;

  template <typename Fn>
  void for_each_variant(Fn check) {
    for (const std::string& spec : variants(GetParam())) {
      SCOPED_TRACE(spec);
      scheme = Scheme::parse(spec);
      range = int_code_range(scheme.bits, scheme.symmetric, scheme.full_range);
      bias = code_bias(scheme);
      check();
      if (HasFatalFailure()) return;
    }
  }

  int64_t group_of(int64_t col, int64_t cols) const { return col / scheme.values_per_scale(cols); }

  std::vector<uint8_t> unpacked_row(const QuantizedTensor& q, int64_t r) const {
    std::vector<uint8_t> codes(static_cast<size_t>(q.cols()));
    const int64_t bytes = q.codes.cols();
    unpack_codes({q.codes.data<uint8_t>() + r * bytes, static_cast<size_t>(bytes)}, scheme.bits, codes);
    return codes;
  }

  void check_scale_storable(float s) const {
    ASSERT_GT(s, 0.0f);
    if (scheme.scale_format == ScaleFormat::F16) {
      ASSERT_EQ(f16_to_f32(f32_to_f16(s)), s);
    }
    if (scheme.scale_format == ScaleFormat::Pow2) {
      int e = 0;
      ASSERT_EQ(std::frexp(s, &e), 0.5f) << s;
    }
  }

  void check_error_bound() {
    constexpr int64_t kRows = 6, kCols = 37;  // g16 -> 16,16,5; g7 -> 5 x 7 + 2
    const Tensor w = testing::random_weights(kRows, kCols, 1234, /*offset=*/!scheme.symmetric);
    const QuantizedTensor q = quantize(w, scheme);
    const Tensor d = dequantize(q);
    ASSERT_EQ(d.shape(), w.shape());
    const ParamGrid grid = stored_params(q);
    const float* x = w.data<float>();
    const float* y = d.data<float>();
    for (int64_t r = 0; r < kRows; ++r) {
      const auto codes = unpacked_row(q, r);
      for (int64_t c = 0; c < kCols; ++c) {
        const GroupParams p = grid.row(r)[static_cast<size_t>(group_of(c, kCols))];
        check_scale_storable(p.scale);
        const size_t i = static_cast<size_t>(r * kCols + c);
        ASSERT_LE(std::fabs(y[i] - x[i]), p.scale * (0.5f + 1e-4f)) << "row " << r << " col " << c;
        ASSERT_GE(codes[static_cast<size_t>(c)], range.qmin + bias);
        ASSERT_LE(codes[static_cast<size_t>(c)], range.qmax + bias);
      }
    }
  }

  void check_grid_values_exact() {
    constexpr int64_t kRows = 5, kCols = 23;
    std::mt19937 rng(99);
    std::uniform_real_distribution<float> scale(0.001f, 2.0f);
    std::uniform_int_distribution<int32_t> code(range.qmin, range.qmax);
    Tensor probe = Tensor::zeros(DType::F32, {kRows, kCols});
    ParamGrid grid = choose_params(probe, scheme);  // right shape; values replaced below
    for (auto& p : grid.params) {
      p.scale = round_scale(scale(rng), scheme.scale_format);
      p.zero_point = scheme.symmetric ? 0 : code(rng);
    }
    std::vector<float> values(static_cast<size_t>(kRows * kCols));
    std::vector<int32_t> qs(values.size());
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t c = 0; c < kCols; ++c) {
        const GroupParams p = grid.row(r)[static_cast<size_t>(group_of(c, kCols))];
        const size_t i = static_cast<size_t>(r * kCols + c);
        qs[i] = code(rng);
        values[i] = p.scale * static_cast<float>(qs[i] - p.zero_point);
      }
    }
    const Tensor w = Tensor::from_f32(values, {kRows, kCols});
    const QuantizedTensor q = quantize(w, scheme, grid);
    EXPECT_EQ(stored_params(q).params, grid.params);
    const Tensor d = dequantize(q);
    for (int64_t r = 0; r < kRows; ++r) {
      const auto codes = unpacked_row(q, r);
      for (int64_t c = 0; c < kCols; ++c) {
        const size_t i = static_cast<size_t>(r * kCols + c);
        ASSERT_EQ(codes[static_cast<size_t>(c)], qs[i] + bias) << i;
        ASSERT_EQ(d.data<float>()[i], values[i]) << i;
      }
    }
    // Fake quantization agrees with the stored round trip.
    const Tensor f = fake_quantize(w, scheme, grid);
    for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(f.data<float>()[i], values[i]);
  }

  void check_outliers_clamp() {
    std::vector<float> x = testing::gaussian(200, 5, 2.0f);
    if (!scheme.symmetric)
      for (auto& v : x) v += 0.7f;
    const GroupStats st = group_stats(x);
    // Parameters for a range much narrower than the data (even after a pow2
    // scale doubles it): many values fall outside.
    const GroupParams p = group_params_from_range(st.min * 0.3f, st.max * 0.3f, scheme);
    std::vector<uint8_t> codes(x.size());
    encode_group(x, p, scheme, codes);
    std::vector<float> y(x.size());
    decode_group(codes, p, scheme, y);
    const float top = p.scale * static_cast<float>(range.qmax - p.zero_point);
    const float bottom = p.scale * static_cast<float>(range.qmin - p.zero_point);
    int clipped_high = 0, clipped_low = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float units = x[i] / p.scale + static_cast<float>(p.zero_point);
      if (units > static_cast<float>(range.qmax) + 0.5f) {
        ++clipped_high;
        ASSERT_EQ(codes[i], range.qmax + bias);
        ASSERT_EQ(y[i], top);
      } else if (units < static_cast<float>(range.qmin) - 0.5f) {
        ++clipped_low;
        ASSERT_EQ(codes[i], range.qmin + bias);
        ASSERT_EQ(y[i], bottom);
      } else {
        ASSERT_LE(std::fabs(y[i] - x[i]), p.scale * (0.5f + 1e-4f));
      }
      // The scalar API gives the same codes.
      ASSERT_EQ(affine_quantize(x[i], affine_params(p, scheme)) + bias, codes[i]);
      ASSERT_EQ(fake_quantize_value(x[i], p, scheme), y[i]);
    }
    EXPECT_GT(clipped_high, 0);
    EXPECT_GT(clipped_low, 0);
  }

  void check_shapes_and_storage() {
    const Tensor w = testing::random_weights(4, 37, 3);
    const QuantizedTensor q = quantize(w, scheme);
    EXPECT_EQ(q.codes.dtype(), DType::U8);
    EXPECT_EQ(q.codes.shape(), (Shape{4, static_cast<int64_t>(packed_bytes(37, scheme.bits))}));
    const Shape s_shape = scheme.granularity == Granularity::Tensor ? Shape{1, 1} : Shape{4, scheme.groups_per_row(37)};
    EXPECT_EQ(q.scales.shape(), s_shape);
    const DType s_dtype = scheme.scale_format == ScaleFormat::F32   ? DType::F32
                          : scheme.scale_format == ScaleFormat::F16 ? DType::F16
                                                                    : DType::I8;
    EXPECT_EQ(q.scales.dtype(), s_dtype);
    if (scheme.symmetric) {
      EXPECT_TRUE(q.zero_points.empty());
    } else {
      EXPECT_EQ(q.zero_points.shape(), s_shape);
      EXPECT_EQ(q.zero_points.dtype(), DType::U8);
    }
    EXPECT_EQ(q.storage_bytes(),
              q.codes.nbytes() + q.scales.nbytes() + (scheme.symmetric ? 0 : q.zero_points.nbytes()));
    EXPECT_DOUBLE_EQ(q.bits_per_weight(), static_cast<double>(q.storage_bytes()) * 8.0 / (4.0 * 37.0));
    EXPECT_NO_THROW(q.validate());
  }
};

TEST_P(IntScheme, ErrorAtMostHalfAScale) {
  for_each_variant([&] { check_error_bound(); });
}

TEST_P(IntScheme, GridValuesReproducedExactly) {
  for_each_variant([&] { check_grid_values_exact(); });
}

TEST_P(IntScheme, OutliersClampToEndCodes) {
  for_each_variant([&] { check_outliers_clamp(); });
}

TEST_P(IntScheme, ShapesAndStorage) {
  for_each_variant([&] { check_shapes_and_storage(); });
}

INSTANTIATE_TEST_SUITE_P(Bits, IntScheme, ::testing::Range(2, 9),
                         [](const ::testing::TestParamInfo<int>& p) { return "int" + std::to_string(p.param); });

TEST(Affine, RoundsHalfToEven) {
  const AffineParams p = {1.0f, 0, -127, 127};
  EXPECT_EQ(affine_quantize(2.5f, p), 2);
  EXPECT_EQ(affine_quantize(3.5f, p), 4);
  EXPECT_EQ(affine_quantize(-2.5f, p), -2);
  EXPECT_EQ(affine_quantize(-0.5f, p), 0);
  EXPECT_EQ(affine_quantize(0.5f, p), 0);
  EXPECT_EQ(affine_quantize(1e30f, p), 127);
  EXPECT_EQ(affine_quantize(-1e30f, p), -127);
  EXPECT_EQ(affine_quantize(std::nextafter(2.5f, 3.0f), p), 3);
  const AffineParams z = {0.5f, 3, 0, 15};
  EXPECT_EQ(affine_quantize(0.0f, z), 3);
  EXPECT_EQ(affine_quantize(1.25f, z), 5);   // 2.5 -> 2, + 3
  EXPECT_EQ(affine_quantize(100.0f, z), 15);
  EXPECT_EQ(affine_quantize(-100.0f, z), 0);
  EXPECT_FLOAT_EQ(affine_dequantize(5, z), 1.0f);
}

TEST(Affine, ParamsFromRange) {
  const AffineParams sym = affine_params_from_range(-2.0f, 1.0f, Scheme::parse("int4"));
  EXPECT_FLOAT_EQ(sym.scale, 2.0f / 7.0f);
  EXPECT_EQ(sym.zero_point, 0);
  EXPECT_EQ(sym.qmin, -7);
  EXPECT_EQ(sym.qmax, 7);
  const AffineParams full = affine_params_from_range(-2.0f, 1.0f, Scheme::parse("int4:full"));
  EXPECT_FLOAT_EQ(full.scale, 2.0f / 7.5f);
  EXPECT_EQ(full.qmin, -8);
  const AffineParams asym = affine_params_from_range(-1.0f, 2.0f, Scheme::parse("int4:asym"));
  EXPECT_FLOAT_EQ(asym.scale, 3.0f / 15.0f);
  EXPECT_EQ(asym.zero_point, 5);  // 0 - round(-1 / 0.2)
  const AffineParams pos = affine_params_from_range(1.0f, 2.0f, Scheme::parse("int4:asym"));
  EXPECT_EQ(pos.zero_point, 0);  // range widened to include 0
  EXPECT_FLOAT_EQ(pos.scale, 2.0f / 15.0f);
  const AffineParams zero = affine_params_from_range(0.0f, 0.0f, Scheme::parse("int8"));
  EXPECT_EQ(zero.scale, 1.0f);
  EXPECT_THROW(affine_params_from_range(0.0f, NAN, Scheme::parse("int8")), Error);
}

TEST(Affine, RoundScaleRoundsUpToStorable) {
  EXPECT_EQ(round_scale(0.3f, ScaleFormat::F32), 0.3f);
  const float h = round_scale(0.3f, ScaleFormat::F16);
  EXPECT_GE(h, 0.3f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(h)), h);
  EXPECT_LT(h - 0.3f, 0.3f / 1024.0f);
  EXPECT_EQ(round_scale(0.25f, ScaleFormat::F16), 0.25f);
  EXPECT_EQ(round_scale(1e-9f, ScaleFormat::F16), std::ldexp(1.0f, -24));  // smallest fp16 subnormal
  EXPECT_THROW(round_scale(70000.0f, ScaleFormat::F16), Error);
  EXPECT_EQ(round_scale(0.3f, ScaleFormat::Pow2), 0.5f);
  EXPECT_EQ(round_scale(0.25f, ScaleFormat::Pow2), 0.25f);
  EXPECT_EQ(round_scale(3.0f, ScaleFormat::Pow2), 4.0f);
  EXPECT_EQ(round_scale(1e-40f, ScaleFormat::Pow2), std::ldexp(1.0f, -128));
  EXPECT_THROW(round_scale(0.0f, ScaleFormat::F32), Error);
  EXPECT_THROW(round_scale(-1.0f, ScaleFormat::F32), Error);
}

// Above 2^127 the next power of two is not storable: clamping down to 2^127
// would leave the range uncovered, so it is an error like the fp16 overflow.
TEST(Affine, Pow2ScaleAboveTwoTo127IsAnError) {
  EXPECT_EQ(round_scale(std::ldexp(1.0f, 127), ScaleFormat::Pow2), std::ldexp(1.0f, 127));
  EXPECT_EQ(round_scale(std::ldexp(1.0f, 126) * 1.5f, ScaleFormat::Pow2), std::ldexp(1.0f, 127));
  try {
    (void)round_scale(std::ldexp(1.0f, 127) * 1.5f, ScaleFormat::Pow2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2^127"), std::string::npos) << e.what();
  }
  // Through the range API: int2 has one step per side, so the scale is amax > 2^127.
  EXPECT_THROW(affine_params_from_range(-3.0e38f, 3.0e38f, Scheme::parse("int2:pow2scale")), Error);
}

// One definition of the integer widths: schemes int2..int8, range arithmetic up to 16.
TEST(Affine, IntegerWidthLimitsAreShared) {
  EXPECT_THROW(int_code_range(kMinIntBits - 1, true, false), Error);
  EXPECT_THROW(int_code_range(kMaxRangeIntBits + 1, false, false), Error);
  EXPECT_EQ(int_code_range(kMaxRangeIntBits, false, false).qmax, 65535);
  EXPECT_EQ(int_code_range(kMinIntBits, true, false).qmax, 1);
  EXPECT_THROW(Scheme::parse("int" + std::to_string(kMaxIntBits + 1)), Error);
  EXPECT_NO_THROW(Scheme::parse("int" + std::to_string(kMaxIntBits)));
  EXPECT_NO_THROW(Scheme::parse("int" + std::to_string(kMinIntBits)));
}

TEST(Affine, FinishScaleIsTheSharedRule) {
  EXPECT_EQ(finish_scale(0.0, ScaleFormat::F32), 1.0f);
  EXPECT_EQ(finish_scale(0.0, ScaleFormat::Pow2), 1.0f);
  EXPECT_EQ(finish_scale(1e-45, ScaleFormat::F32), FLT_MIN);
  EXPECT_EQ(finish_scale(0.3, ScaleFormat::Pow2), 0.5f);
  EXPECT_EQ(finish_scale(0.3, ScaleFormat::F32), 0.3f);
  EXPECT_THROW(finish_scale(-1.0, ScaleFormat::F32), Error);
  EXPECT_THROW(finish_scale(std::nan(""), ScaleFormat::F32), Error);
  // Both quantizer families follow it for all-zero input.
  EXPECT_EQ(affine_params_from_range(0.0f, 0.0f, Scheme::parse("int4")).scale, 1.0f);
}

TEST(Affine, SpanFormsMatchScalar) {
  const std::vector<float> x = testing::gaussian(1000, 11, 3.0f);
  for (const char* spec : {"int4", "int4:asym", "int8:full", "int3:asym"}) {
    const Scheme s = Scheme::parse(spec);
    const AffineParams p = affine_params_from_range(-2.0f, 1.5f, s);
    const int32_t bias = code_bias(s);
    std::vector<uint8_t> codes(x.size());
    affine_quantize_codes(x, p, bias, codes);
    std::vector<float> y(x.size());
    affine_dequantize_codes(codes, p, bias, y);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(codes[i], affine_quantize(x[i], p) + bias) << spec;
      ASSERT_EQ(y[i], affine_dequantize(codes[i] - bias, p)) << spec;
    }
  }
}

}  // namespace
}  // namespace qf::quant
