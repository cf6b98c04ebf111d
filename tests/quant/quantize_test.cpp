#include "quant/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "quant/codebook.h"
#include "quant/metrics.h"
#include "quant/packing.h"
#include "test_util.h"

namespace qf::quant {
namespace {

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error, expected one containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

struct RaggedCase {
  int64_t cols;
  const char* spec;
  std::vector<int64_t> group_lengths;
};

TEST(Quantize, RaggedGroups) {
  const RaggedCase cases[] = {
      {172, "int4:g64", {64, 64, 44}},
      {172, "int4:g128:asym", {128, 44}},
      {172, "nf4:g64", {64, 64, 44}},
      {172, "int3:g128:f16scale", {128, 44}},
      {7, "int4:g4", {4, 3}},
      {7, "int2:g4:asym:pow2scale", {4, 3}},
      {7, "fp4:g4", {4, 3}},
      {7, "ternary:g4", {4, 3}},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.spec);
    const Scheme s = Scheme::parse(tc.spec);
    constexpr int64_t kRows = 3;
    // Each group gets its own magnitude, so a group reading the wrong columns shows.
    std::vector<float> v = testing::gaussian(static_cast<size_t>(kRows * tc.cols), 77);
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t c = 0; c < tc.cols; ++c)
        v[static_cast<size_t>(r * tc.cols + c)] *= std::pow(4.0f, static_cast<float>(c / s.group_size));
    const Tensor w = Tensor::from_f32(v, {kRows, tc.cols});
    const QuantizedTensor q = quantize(w, s);
    ASSERT_EQ(s.groups_per_row(tc.cols), static_cast<int64_t>(tc.group_lengths.size()));
    ASSERT_EQ(q.scales.shape(), (Shape{kRows, static_cast<int64_t>(tc.group_lengths.size())}));
    const ParamGrid grid = stored_params(q);
    for (int64_t r = 0; r < kRows; ++r) {
      int64_t begin = 0;
      for (size_t g = 0; g < tc.group_lengths.size(); ++g) {
        const std::span<const float> group(w.data<float>() + r * tc.cols + begin,
                                           static_cast<size_t>(tc.group_lengths[g]));
        // The stored parameters are what the scheme picks for exactly this group's values.
        EXPECT_EQ(grid.row(r)[g], choose_group_params(group, s)) << "row " << r << " group " << g;
        begin += tc.group_lengths[g];
      }
      EXPECT_EQ(begin, tc.cols);
    }
    // Dequantizing agrees with the group-level API, the ragged tail included.
    const Tensor d = dequantize(q);
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t c = 0; c < tc.cols; ++c) {
        const GroupParams p = grid.row(r)[static_cast<size_t>(c / s.group_size)];
        const float x = w.data<float>()[r * tc.cols + c];
        ASSERT_EQ(d.data<float>()[r * tc.cols + c], fake_quantize_value(x, p, s)) << r << "," << c;
      }
    }
  }
}

TEST(Quantize, RaggedGroupScaleValues) {
  // cols 7, g4: [1 2.2 3 4 | 5 6 -7]: symmetric int4 scales 4/7 and 7/7.
  const Tensor w = Tensor::from_f32(std::vector<float>{1, 2.2f, 3, 4, 5, 6, -7}, {1, 7});
  const QuantizedTensor q = quantize(w, Scheme::parse("int4:g4"));
  ASSERT_EQ(q.scales.shape(), (Shape{1, 2}));
  EXPECT_FLOAT_EQ(q.scales.data<float>()[0], 4.0f / 7.0f);
  EXPECT_FLOAT_EQ(q.scales.data<float>()[1], 1.0f);
  // q = round(x / scale) = [2 4 5 7 | 5 6 -7]; codes q + 8, packed low nibble first into 4 bytes.
  ASSERT_EQ(q.codes.shape(), (Shape{1, 4}));
  const uint8_t* b = q.codes.data<uint8_t>();
  EXPECT_EQ(b[0], 0xCA);  // 10 | 12 << 4
  EXPECT_EQ(b[1], 0xFD);  // 13 | 15 << 4
  EXPECT_EQ(b[2], 0xED);  // 13 | 14 << 4
  EXPECT_EQ(b[3], 0x01);  // 1, padding nibble zero
  const auto d = dequantize(q).to_f32_vector();
  EXPECT_FLOAT_EQ(d[6], -7.0f);
  EXPECT_FLOAT_EQ(d[3], 4.0f);
}

TEST(Quantize, TensorGranularityUsesOneScale) {
  const Tensor w = testing::random_weights(5, 33, 4);
  const QuantizedTensor q = quantize(w, Scheme::parse("int8:tensor"));
  EXPECT_EQ(q.scales.shape(), (Shape{1, 1}));
  float amax = 0;
  for (float x : w.to_f32_vector()) amax = std::max(amax, std::fabs(x));
  EXPECT_FLOAT_EQ(q.scales.data<float>()[0], amax / 127.0f);
  const ParamGrid grid = choose_params(w, Scheme::parse("int8:tensor"));
  EXPECT_EQ(grid.rows, 1);
  EXPECT_EQ(grid.params.size(), 1u);
  EXPECT_EQ(grid.row(3)[0], grid.row(0)[0]);  // every row reads the one entry
}

TEST(Quantize, HigherDimensionalTensorsAreRowsTimesLastDim) {
  std::vector<float> v = testing::gaussian(2 * 3 * 20, 6);
  const Tensor w = Tensor::from_f32(v, {2, 3, 20});
  const QuantizedTensor q = quantize(w, Scheme::parse("int4:g8"));
  EXPECT_EQ(q.rows(), 6);
  EXPECT_EQ(q.cols(), 20);
  EXPECT_EQ(q.codes.shape(), (Shape{6, 10}));
  EXPECT_EQ(q.scales.shape(), (Shape{6, 3}));
  const Tensor d = dequantize(q);
  EXPECT_EQ(d.shape(), w.shape());
  const Tensor flat = dequantize(quantize(w.reshape({6, 20}), Scheme::parse("int4:g8")));
  EXPECT_EQ(d.to_f32_vector(), flat.to_f32_vector());
  // 1-D: one row.
  const QuantizedTensor one = quantize(Tensor::from_f32(v, {120}), Scheme::parse("int8"));
  EXPECT_EQ(one.scales.shape(), (Shape{1, 1}));
  EXPECT_EQ(one.codes.shape(), (Shape{1, 120}));
}

TEST(Quantize, EmptyTensors) {
  for (const Shape& shape : {Shape{0, 16}, Shape{4, 0}, Shape{0}}) {
    const Tensor w = Tensor::zeros(DType::F32, shape);
    for (const char* spec : {"int4:g8", "int8:tensor:asym", "nf4", "ternary"}) {
      const QuantizedTensor q = quantize(w, Scheme::parse(spec));
      EXPECT_EQ(q.bits_per_weight(), 0.0);
      const Tensor d = dequantize(q);
      EXPECT_EQ(d.shape(), shape);
    }
  }
}

TEST(Quantize, StorageAndBitsPerWeight) {
  const Tensor w = testing::random_weights(8, 4096, 1);
  const QuantizedTensor sym = quantize(w, Scheme::parse("int4:g128"));
  EXPECT_EQ(sym.storage_bytes(), 8u * 2048 + 8 * 32 * 4);
  EXPECT_DOUBLE_EQ(sym.bits_per_weight(), 4.25);
  EXPECT_DOUBLE_EQ(quantize(w, Scheme::parse("int4:g128:f16scale")).bits_per_weight(), 4.125);
  EXPECT_DOUBLE_EQ(quantize(w, Scheme::parse("int4:g128:asym:f16scale")).bits_per_weight(), 4.1875);
  EXPECT_DOUBLE_EQ(quantize(w, Scheme::parse("nf4:g64")).bits_per_weight(), 4.5);
  EXPECT_DOUBLE_EQ(quantize(w, Scheme::parse("fp4:g32:pow2scale")).bits_per_weight(), 4.25);  // MXFP4 layout
  EXPECT_DOUBLE_EQ(quantize(w, Scheme::parse("ternary")).bits_per_weight(), 2.0 + 32.0 / 4096);
  EXPECT_DOUBLE_EQ(quantize(w, Scheme::parse("int8:tensor")).bits_per_weight(), 8.0 + 32.0 / (8 * 4096));
}

TEST(Quantize, ScaleStorageFormats) {
  const Tensor w = testing::random_weights(3, 40, 2);
  const QuantizedTensor h = quantize(w, Scheme::parse("int4:g16:f16scale"));
  EXPECT_EQ(h.scales.dtype(), DType::F16);
  const QuantizedTensor p = quantize(w, Scheme::parse("int4:g16:pow2scale"));
  EXPECT_EQ(p.scales.dtype(), DType::I8);
  const ParamGrid grid = stored_params(p);
  for (size_t i = 0; i < grid.params.size(); ++i) {
    EXPECT_EQ(grid.params[i].scale, std::ldexp(1.0f, p.scales.data<int8_t>()[i]));
  }
  const ParamGrid hg = stored_params(h);
  for (size_t i = 0; i < hg.params.size(); ++i) {
    EXPECT_EQ(hg.params[i].scale, f16_to_f32(h.scales.data<uint16_t>()[i]));
  }
}

TEST(Quantize, RejectsNaNAndInfNamingThePosition) {
  std::vector<float> v = testing::gaussian(4 * 8, 3);
  v[1 * 8 + 3] = std::numeric_limits<float>::quiet_NaN();
  const Tensor nan = Tensor::from_f32(v, {4, 8});
  for (const char* spec : {"int4:g4", "int8", "int8:tensor", "nf4:g4", "ternary:tensor", "fp8e4m3"}) {
    expect_error([&] { quantize(nan, Scheme::parse(spec)); }, "cannot quantize NaN at row 1, column 3");
    expect_error([&] { choose_params(nan, Scheme::parse(spec)); }, "NaN at row 1, column 3");
  }
  v[1 * 8 + 3] = 0.0f;
  v[2 * 8 + 7] = -std::numeric_limits<float>::infinity();
  const Tensor inf = Tensor::from_f32(v, {4, 8});
  expect_error([&] { quantize(inf, Scheme::parse("int4:asym")); }, "cannot quantize -Inf at row 2, column 7");
  // With given parameters, and through fake quantization.
  const Scheme s = Scheme::parse("int8");
  const ParamGrid grid = choose_params(Tensor::from_f32(testing::gaussian(32, 1), {4, 8}), s);
  expect_error([&] { quantize(inf, s, grid); }, "-Inf at row 2, column 7");
  expect_error([&] { fake_quantize(inf, s, grid); }, "-Inf at row 2, column 7");
  expect_error([&] { choose_group_params(std::vector<float>{1.0f, INFINITY}, s); }, "+Inf at index 1");
}

TEST(Quantize, AcceptsAnyFloatDtype) {
  const Tensor w = testing::random_weights(4, 64, 9);
  for (DType t : {DType::F16, DType::BF16, DType::F8_E4M3}) {
    const Tensor narrow = w.cast(t);
    const Scheme s = Scheme::parse("int4:g32:asym");
    const QuantizedTensor a = quantize(narrow, s);
    const QuantizedTensor b = quantize(narrow.to_f32(), s);
    EXPECT_EQ(dequantize(a).to_f32_vector(), dequantize(b).to_f32_vector()) << dtype_name(t);
  }
  expect_error([&] { quantize(Tensor::zeros(DType::I32, {2, 2}), Scheme::parse("int8")); },
               "cannot quantize a I32 tensor");
}

TEST(Quantize, FakeQuantizeEqualsRoundTrip) {
  const Tensor w = testing::random_weights(7, 100, 10, true);
  for (const char* spec : {"int4:g32", "int3:g128:asym", "int8:tensor:full", "nf4", "fp4:g16:f16scale", "fp8e4m3",
                           "fp8e5m2:channel", "ternary", "binary:g32:pow2scale", "int2:channel:asym:pow2scale"}) {
    const Scheme s = Scheme::parse(spec);
    EXPECT_EQ(fake_quantize(w, s).to_f32_vector(), dequantize(quantize(w, s)).to_f32_vector()) << spec;
    // Row-level pieces agree with the tensor API.
    const ParamGrid grid = choose_params(w, s);
    const QuantizedTensor q = quantize(w, s, grid);
    EXPECT_EQ(stored_params(q).params, grid.params) << spec;
    std::vector<float> row(w.data<float>() + 2 * 100, w.data<float>() + 3 * 100);
    std::vector<uint8_t> packed(packed_bytes(100, s.bits));
    quantize_row(row, grid.row(2), s, packed);
    EXPECT_EQ(0, std::memcmp(packed.data(), q.codes.data<uint8_t>() + 2 * q.codes.cols(), packed.size())) << spec;
    std::vector<float> out(100);
    dequantize_row(packed, grid.row(2), s, out);
    fake_quantize_row(row, grid.row(2), s);
    EXPECT_EQ(out, row) << spec;
  }
}

TEST(Quantize, GivenParametersAreRoundedAndChecked) {
  const Tensor w = testing::random_weights(2, 16, 12);
  const Scheme s = Scheme::parse("int4:g8:asym:f16scale");
  ParamGrid grid = choose_params(w, s);
  grid.params[0].scale = 0.3f;  // not an fp16 value: stored rounded up
  const QuantizedTensor q = quantize(w, s, grid);
  EXPECT_EQ(stored_params(q).params[0].scale, round_scale(0.3f, ScaleFormat::F16));
  grid.params[0].zero_point = 16;
  expect_error([&] { quantize(w, s, grid); }, "zero point 16 outside the code range [0, 15]");
  grid.params[0].zero_point = 3;
  grid.params[1].scale = 0.0f;
  expect_error([&] { quantize(w, s, grid); }, "not a positive finite number");
  ParamGrid wrong = choose_params(w, Scheme::parse("int4:g4:asym:f16scale"));
  expect_error([&] { quantize(w, s, wrong); }, "does not fit scheme");
}

// Errors in caller-supplied parameters name the row and group they are in.
TEST(Quantize, GivenParameterErrorsNameRowAndGroup) {
  const Tensor w = testing::random_weights(3, 16, 12);
  const Scheme s = Scheme::parse("int4:g8:asym");
  ParamGrid grid = choose_params(w, s);
  grid.row(2)[1].zero_point = 16;
  expect_error([&] { quantize(w, s, grid); }, "row 2, group 1: zero point 16 outside the code range");
  expect_error([&] { fake_quantize(w, s, grid); }, "row 2, group 1: zero point 16 outside the code range");
  grid.row(2)[1].zero_point = 3;
  grid.row(1)[0].scale = 0.0f;
  expect_error([&] { quantize(w, s, grid); }, "row 1, group 0: scale 0 is not a positive finite number");
  expect_error([&] { fake_quantize(w, s, grid); }, "row 1, group 0: scale 0");
  const Scheme t = Scheme::parse("int8:tensor");
  ParamGrid one = choose_params(w, t);
  one.params[0].scale = -1.0f;
  expect_error([&] { quantize(w, t, one); }, "tensor-wide parameters: scale -1");
}

TEST(Quantize, ClippedRangeThroughTensorApi) {
  // Narrower parameters from group_params_from_range clamp outliers to the end codes.
  const Tensor w = Tensor::from_f32(std::vector<float>{-10, -1, 0, 0.3f, 1, 10}, {1, 6});
  const Scheme s = Scheme::parse("int4");
  ParamGrid grid = choose_params(w, s);
  grid.params[0] = group_params_from_range(-1.0f, 1.0f, s);  // scale 1/7
  const auto d = dequantize(quantize(w, s, grid)).to_f32_vector();
  EXPECT_FLOAT_EQ(d[0], -1.0f);
  EXPECT_FLOAT_EQ(d[5], 1.0f);
  EXPECT_FLOAT_EQ(d[3], 2.0f / 7.0f);  // 2.1 -> 2
}

TEST(Quantize, ValidateRejectsInconsistentTensors) {
  const Tensor w = testing::random_weights(4, 32, 13);
  QuantizedTensor q = quantize(w, Scheme::parse("int4:g16:asym"));
  QuantizedTensor bad = q;
  bad.codes = Tensor::zeros(DType::U8, {4, 15});
  expect_error([&] { dequantize(bad); }, "quantized codes must be U8 [4, 16]");
  bad = q;
  bad.scales = Tensor::zeros(DType::F16, {4, 2});
  expect_error([&] { dequantize(bad); }, "scales must be F32 [4, 2]");
  bad = q;
  bad.zero_points = Tensor();
  expect_error([&] { dequantize(bad); }, "zero points must be U8 [4, 2]");
  bad = q;
  bad.scheme = Scheme::parse("int4:g16");
  expect_error([&] { dequantize(bad); }, "has no zero points");
  bad = q;
  bad.shape = {4, 33};
  expect_error([&] { dequantize(bad); }, "quantized codes");
}

TEST(Quantize, Int8ErrorIsSmall) {
  const Tensor w = testing::random_weights(64, 256, 14);
  const auto ref = w.to_f32_vector();
  const ErrorMetrics i8 = measure_error(ref, dequantize(quantize(w, Scheme::parse("int8"))).to_f32_vector());
  const ErrorMetrics i4 = measure_error(ref, dequantize(quantize(w, Scheme::parse("int4:g128"))).to_f32_vector());
  const ErrorMetrics nf4 = measure_error(ref, dequantize(quantize(w, Scheme::parse("nf4:g128"))).to_f32_vector());
  EXPECT_GT(i8.sqnr_db, 35.0);
  EXPECT_GT(i8.cosine, 0.9999);
  EXPECT_GT(i4.sqnr_db, 15.0);
  EXPECT_GT(i8.sqnr_db, i4.sqnr_db + 20.0);
  EXPECT_GT(nf4.sqnr_db, i4.sqnr_db);  // NF4 suits Gaussian weights better than uniform int4
}

}  // namespace
}  // namespace qf::quant
