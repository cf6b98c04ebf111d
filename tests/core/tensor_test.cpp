#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/float_formats.h"

namespace qf {
namespace {

TEST(Tensor, ZerosOwnsWritableMemory) {
  Tensor t = Tensor::zeros(DType::F32, {3, 4});
  EXPECT_EQ(t.numel(), 12);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_EQ(t.rows(), 3);
  EXPECT_EQ(t.cols(), 4);
  EXPECT_TRUE(t.writable());
  for (int i = 0; i < 12; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
  t.mutable_data<float>()[5] = 2.5f;
  Tensor shared = t;  // copies share bytes
  EXPECT_EQ(shared.data<float>()[5], 2.5f);
  Tensor deep = t.clone();
  t.mutable_data<float>()[5] = 1.0f;
  EXPECT_EQ(deep.data<float>()[5], 2.5f);
}

TEST(Tensor, ViewIsReadOnlyAndKeepsOwnerAlive) {
  auto buffer = std::make_shared<std::vector<uint16_t>>(std::vector<uint16_t>{f32_to_f16(1.5f), f32_to_f16(-2.0f)});
  Tensor v = Tensor::view(DType::F16, {2}, buffer->data(), buffer);
  buffer.reset();
  EXPECT_FALSE(v.writable());
  EXPECT_THROW(v.mutable_bytes(), Error);
  EXPECT_EQ(v.to_f32_vector(), (std::vector<float>{1.5f, -2.0f}));
}

TEST(Tensor, ConvertsEveryDtypeToF32) {
  const std::vector<int8_t> i8 = {-3, 7};
  EXPECT_EQ(Tensor::view(DType::I8, {2}, i8.data(), nullptr).to_f32_vector(), (std::vector<float>{-3, 7}));
  const std::vector<uint16_t> bf = {f32_to_bf16(3.0f)};
  EXPECT_EQ(Tensor::view(DType::BF16, {1}, bf.data(), nullptr).to_f32_vector()[0], 3.0f);
  const std::vector<uint8_t> e4 = {0x38};
  EXPECT_EQ(Tensor::view(DType::F8_E4M3, {1}, e4.data(), nullptr).to_f32_vector()[0], 1.0f);
  const std::vector<int64_t> i64 = {1LL << 40};
  EXPECT_EQ(Tensor::view(DType::I64, {1}, i64.data(), nullptr).to_f32_vector()[0], static_cast<float>(1LL << 40));
}

TEST(Tensor, CastRoundsAndReshapeChecksCount) {
  const std::vector<float> v = {1.0f, 448.0f, 1000.0f};
  Tensor t = Tensor::from_f32(v, {3});
  EXPECT_EQ(t.cast(DType::F8_E4M3).to_f32_vector(), (std::vector<float>{1.0f, 448.0f, 448.0f}));
  EXPECT_EQ(t.cast(DType::F16).to_f32_vector(), v);
  EXPECT_EQ(t.reshape({3, 1}).rows(), 3);
  EXPECT_THROW(t.reshape({2, 2}), Error);
}

TEST(Tensor, RejectsWrongElementAccessAndBadShapes) {
  Tensor t = Tensor::zeros(DType::F16, {2});
  EXPECT_THROW(t.data<float>(), Error);
  EXPECT_THROW(Tensor::zeros(DType::F32, {-1, 2}), Error);
  EXPECT_THROW(shape_numel({1LL << 40, 1LL << 40}), Error);
  EXPECT_EQ(shape_to_string({64, 172}), "[64, 172]");
}

// numel fits in int64 but numel * element size does not: must not wrap to 0.
TEST(Tensor, ByteCountOverflowIsAnError) {
  EXPECT_THROW(Tensor::zeros(DType::F64, {int64_t{1} << 61}), Error);
  EXPECT_THROW(Tensor::zeros(DType::F32, {int64_t{1} << 31, int64_t{1} << 31}), Error);
  const float dummy = 0.0f;
  EXPECT_THROW(Tensor::view(DType::F64, {int64_t{1} << 61}, &dummy, nullptr), Error);
  EXPECT_THROW(shape_nbytes(DType::F16, {int64_t{1} << 62, 2}), Error);
  EXPECT_EQ(shape_nbytes(DType::F64, {int64_t{1} << 59}), size_t{1} << 62);
  EXPECT_EQ(shape_nbytes(DType::BF16, {3, 5}), 30u);
  // A valid view of a huge shape still reports its exact byte count.
  const Tensor big = Tensor::view(DType::U8, {int64_t{1} << 40}, &dummy, nullptr);
  EXPECT_EQ(big.nbytes(), size_t{1} << 40);
}

TEST(DType, NamesRoundTrip) {
  for (auto t : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2, DType::I64,
                 DType::I32, DType::I16, DType::I8, DType::U64, DType::U32, DType::U16, DType::U8, DType::Bool}) {
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  }
  EXPECT_FALSE(dtype_from_name("F4").has_value());
}

}  // namespace
}  // namespace qf
