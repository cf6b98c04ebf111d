// A failed write must leave neither the target nor a temporary file, and must
// not disturb a file already at the target path.
#include <gtest/gtest.h>

#include <stdexcept>

#include "formats/safetensors.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

const std::vector<NamedTensor> kGood = {{"a", Tensor::zeros(DType::F32, {4})}};

TEST(SafetensorsWriterFailure, NonexistentDirectory) {
  TempDir dir;
  const auto path = dir.file("no/such/dir/out.safetensors");
  expect_error([&] { write_safetensors(path, kGood); }, {path});
  EXPECT_TRUE(dir.entries().empty());
}

TEST(SafetensorsWriterFailure, TensorWithoutDataMidway) {
  TempDir dir;
  const auto path = dir.file("out.safetensors");
  // The header and the first tensor are written before the bad one is seen.
  const std::vector<NamedTensor> tensors = {{"a", Tensor::zeros(DType::F32, {1024})}, {"b", Tensor()}};
  expect_error([&] { write_safetensors(path, tensors); }, {path, "\"b\" has no data"});
  EXPECT_TRUE(dir.entries().empty());
}

TEST(SafetensorsWriterFailure, ProducerThrowsMidway) {
  TempDir dir;
  const auto path = dir.file("out.safetensors");
  write_bytes(path, Bytes(3, std::byte{42}));  // an earlier output
  EXPECT_THROW(
      {
        SafetensorsWriter w(path, {{"a", DType::F32, {4}}, {"b", DType::F32, {4}}});
        w.write("a", Tensor::zeros(DType::F32, {4}));
        throw std::runtime_error("quantizer failed");
      },
      std::runtime_error);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.safetensors"});
  EXPECT_EQ(read_bytes(path), Bytes(3, std::byte{42}));
}

TEST(SafetensorsWriterFailure, FinishBeforeAllTensors) {
  TempDir dir;
  const auto path = dir.file("out.safetensors");
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {4}}, {"b", DType::F32, {4}}});
    w.write("a", Tensor::zeros(DType::F32, {4}));
    expect_error([&] { w.finish(); }, {"only 1 of 2"});
  }
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace qf::formats
