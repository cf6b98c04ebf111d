#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

const std::vector<DType> kAllDtypes = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3,
                                       DType::F8_E5M2, DType::I64, DType::I32, DType::I16, DType::I8,
                                       DType::U64, DType::U32, DType::U16, DType::U8, DType::Bool};

// Distinct bytes per tensor so a mix-up between tensors cannot go unnoticed.
Tensor patterned(DType dtype, Shape shape, int seed) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  std::byte* p = t.mutable_bytes();
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<std::byte>((seed * 31 + i * 7) & 0xFF);
  if (dtype == DType::Bool)
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<std::byte>((seed + i) % 2);
  return t;
}

void expect_same(const std::vector<NamedTensor>& expected, const std::vector<NamedTensor>& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(expected[i].name);
    const Tensor& e = expected[i].tensor;
    const Tensor& a = actual[i].tensor;
    EXPECT_EQ(actual[i].name, expected[i].name);
    EXPECT_EQ(a.dtype(), e.dtype());
    EXPECT_EQ(a.shape(), e.shape());
    ASSERT_EQ(a.nbytes(), e.nbytes());
    if (e.nbytes()) {
      EXPECT_EQ(std::memcmp(a.bytes(), e.bytes(), e.nbytes()), 0);
    }
  }
}

TEST(SafetensorsRoundTrip, EveryDtypeAndMetadata) {
  TempDir dir;
  std::vector<NamedTensor> tensors;
  int seed = 0;
  for (DType t : kAllDtypes) {
    tensors.push_back({"t." + std::string(dtype_name(t)), patterned(t, {3, 5}, ++seed)});
    tensors.push_back({"scalar." + std::string(dtype_name(t)), patterned(t, {}, ++seed)});
  }
  tensors.push_back({"empty", Tensor::zeros(DType::F32, {0, 4})});
  tensors.push_back({"last.odd", patterned(DType::U8, {7}, ++seed)});
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"note", "quotes \" and \\ and \xc3\xa9 \xe2\x9c\x93"}, {"empty", ""}};
  const auto path = dir.file("all.safetensors");
  write_safetensors(path, tensors, metadata);

  const auto read = read_safetensors(path);
  expect_same(tensors, read.tensors);
  EXPECT_EQ(read.metadata, metadata);
  for (const auto& t : read.tensors) EXPECT_FALSE(t.tensor.writable()) << t.name << " should be a view of the file";
}

TEST(SafetensorsRoundTrip, ViewsOutliveTheReaderResult) {
  TempDir dir;
  const auto path = dir.file("a.safetensors");
  const float values[] = {1.5f, -2.0f, 3.25f};
  const std::vector<NamedTensor> in = {{"w", Tensor::from_f32(values, {3})}};
  write_safetensors(path, in);
  Tensor kept;
  { kept = read_safetensors(path).tensors.at(0).tensor; }
  std::filesystem::remove(path);  // the mapping, not the name, keeps the bytes
  EXPECT_EQ(kept.to_f32_vector(), (std::vector<float>{1.5f, -2.0f, 3.25f}));
}

TEST(SafetensorsRoundTrip, NoMetadataAndNoTensors) {
  TempDir dir;
  const auto path = dir.file("empty.safetensors");
  write_safetensors(path, {});
  const auto read = read_safetensors(path);
  EXPECT_TRUE(read.tensors.empty());
  EXPECT_TRUE(read.metadata.empty());
  // "{}" padded to 8 bytes, as the reference writer does.
  EXPECT_EQ(read_bytes(path).size(), 16u);
}

TEST(SafetensorsWriterLayout, HeaderMatchesReferenceLayout) {
  TempDir dir;
  const auto path = dir.file("ref.safetensors");
  const float values[] = {1.0f, 2.0f};
  const std::vector<NamedTensor> in = {{"a", Tensor::from_f32(values, {2})}};
  write_safetensors(path, in, {{"format", "pt"}});
  const Bytes bytes = read_bytes(path);
  const std::string json = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const size_t padded = (json.size() + 7) / 8 * 8;
  ASSERT_EQ(bytes.size(), 8 + padded + 8);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n, padded);
  const std::string header(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  EXPECT_EQ(header, json + std::string(padded - json.size(), ' '));
  EXPECT_EQ(header, safetensors_header({{"a", DType::F32, {2}}}, {{"format", "pt"}}));
}

TEST(SafetensorsReader, ParsesFromMemoryAndCopiesMisalignedTensors) {
  // U8 [3] first puts the F32 tensor at an odd address.
  const std::string header =
      R"({"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"f":{"dtype":"F32","shape":[1],"data_offsets":[3,7]}})";
  Bytes bytes = safetensors_bytes(header);
  const uint8_t b[3] = {9, 8, 7};
  const float f = 6.5f;
  append(bytes, b, 3);
  append(bytes, &f, 4);
  const auto read = parse_safetensors(bytes, "memory");
  ASSERT_EQ(read.tensors.size(), 2u);
  EXPECT_EQ(read.tensors[1].name, "f");
  EXPECT_EQ(read.tensors[1].tensor.to_f32_vector(), std::vector<float>{6.5f});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(read.tensors[1].tensor.bytes()) % 4, 0u);
}

TEST(SafetensorsReader, HeaderOrderNeedNotMatchDataOrder) {
  // The reference implementation sorts entries by offset before validating;
  // tensors come back in data (file) order.
  const std::string header =
      R"({"second":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"first":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";
  const auto read = parse_safetensors(safetensors_bytes(header, 6), "memory");
  ASSERT_EQ(read.tensors.size(), 2u);
  EXPECT_EQ(read.tensors[0].name, "first");
  EXPECT_EQ(read.tensors[1].name, "second");
}

TEST(SafetensorsReader, AcceptsTrailingWhitespacePaddingAndZeroSizedTensors) {
  const std::string header =
      R"({"z":{"dtype":"F16","shape":[0,3],"data_offsets":[0,0]},"x":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}})"
      "   \n\t ";
  const auto read = parse_safetensors(safetensors_bytes(header, 4), "memory");
  ASSERT_EQ(read.tensors.size(), 2u);
  EXPECT_EQ(read.tensors[0].tensor.numel(), 0);
  EXPECT_EQ(read.tensors[1].tensor.shape(), (Shape{2}));
}

TEST(SafetensorsWriter, StreamsTensorsInPlanOrder) {
  TempDir dir;
  const auto path = dir.file("stream.safetensors");
  SafetensorsWriter w(path, {{"a", DType::I32, {2}}, {"b", DType::BF16, {1, 3}}}, {{"k", "v"}});
  const Tensor a = patterned(DType::I32, {2}, 1), b = patterned(DType::BF16, {1, 3}, 2);
  w.write("a", a);
  w.write("b", b);
  w.finish();
  const auto read = read_safetensors(path);
  expect_same({{"a", a}, {"b", b}}, read.tensors);
  EXPECT_EQ(read.metadata.at("k"), "v");
}

TEST(SafetensorsWriter, RejectsTensorsThatDoNotMatchThePlan) {
  TempDir dir;
  SafetensorsWriter w(dir.file("x.safetensors"), {{"a", DType::F32, {2}}});
  expect_error([&] { w.write("b", Tensor::zeros(DType::F32, {2})); }, {"\"b\"", "\"a\" was planned"});
  expect_error([&] { w.write("a", Tensor::zeros(DType::F16, {2})); }, {"planned as F32 [2]"});
  expect_error([&] { w.write("a", Tensor::zeros(DType::F32, {3})); }, {"planned as F32 [2]"});
  expect_error([&] { w.finish(); }, {"only 0 of 1 planned tensors"});
}

TEST(SafetensorsWriter, RejectsInvalidPlans) {
  TempDir dir;
  const auto path = dir.file("x.safetensors");
  expect_error([&] { SafetensorsWriter w(path, {{"a", DType::F32, {1}}, {"a", DType::F32, {1}}}); },
               {path, "duplicate tensor name \"a\""});
  expect_error([&] { SafetensorsWriter w(path, {{"__metadata__", DType::F32, {1}}}); }, {"reserved"});
  expect_error([&] { SafetensorsWriter w(path, {{"bad\xff", DType::F32, {1}}}); }, {"UTF-8"});
  expect_error([&] { SafetensorsWriter w(path, {}, {{"k", "\xc0\x80"}}); }, {"UTF-8"});
  expect_error([&] { SafetensorsWriter w(path, {{"neg", DType::F32, {-1}}}); }, {"\"neg\"", "negative"});
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace qf::formats
