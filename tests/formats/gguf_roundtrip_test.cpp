// GGUF writer -> reader round trips: every metadata value type, plain tensor
// types of 0 to 4 dimensions, alignment and padding, conversions, the exact
// byte layout of a tiny file, typed getters, and checkpoint detection.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/float_formats.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

GgufMetadata every_value_type() {
  GgufMetadata m;
  m.add("test.u8", uint8_t{250});
  m.add("test.i8", int8_t{-7});
  m.add("test.u16", uint16_t{65000});
  m.add("test.i16", int16_t{-32000});
  m.add("test.u32", uint32_t{4000000000u});
  m.add("test.i32", int32_t{-2000000000});
  m.add("test.f32", 1e-5f);
  m.add("test.bool_true", true);
  m.add("test.bool_false", false);
  m.add("test.string", "héllo wörld");
  m.add("test.empty_string", "");
  m.add("test.u64", uint64_t{18000000000000000000u});
  m.add("test.i64", int64_t{-9000000000000000000});
  m.add("test.f64", 3.141592653589793);
  m.add("test.arr.u8", std::vector<uint8_t>{0, 1, 255});
  m.add("test.arr.i8", std::vector<int8_t>{-128, 0, 127});
  m.add("test.arr.u16", std::vector<uint16_t>{1, 65535});
  m.add("test.arr.i16", std::vector<int16_t>{-1, 2});
  m.add("test.arr.u32", std::vector<uint32_t>{7, 8, 9});
  m.add("test.arr.i32", std::vector<int32_t>{-3, 1, 6});
  m.add("test.arr.f32", std::vector<float>{0.5f, -0.0f, std::numeric_limits<float>::infinity()});
  m.add("test.arr.bool", std::vector<bool>{true, false, true});
  m.add("test.arr.string", std::vector<std::string>{"<unk>", "", "▁the", std::string("a\0b", 3)});
  m.add("test.arr.u64", std::vector<uint64_t>{1, uint64_t{1} << 63});
  m.add("test.arr.i64", std::vector<int64_t>{-1, int64_t{1} << 62});
  m.add("test.arr.f64", std::vector<double>{1e300, -2.5});
  m.add("test.arr.empty_f32", std::vector<float>{});
  m.add("test.arr.empty_string", std::vector<std::string>{});
  return m;
}

Tensor random_f32(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(rng);
  return Tensor::from_f32(v, shape);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0);
}

// Tensors of every plain float type, 0-D to 4-D, odd sizes so padding matters.
std::vector<NamedTensor> mixed_tensors() {
  return {
      {"scalar", random_f32({}, 1)},
      {"vec", random_f32({5}, 2)},
      {"mat_f16", random_f32({3, 7}, 3).cast(DType::F16)},
      {"cube_bf16", random_f32({2, 3, 5}, 4).cast(DType::BF16)},
      {"four_d", random_f32({2, 1, 3, 4}, 5)},
      {"empty", Tensor::zeros(DType::F32, {0, 4})},
      {"ints", Tensor::zeros(DType::I32, {3})},
  };
}

void expect_roundtrip(const std::string& path, const GgufMetadata& metadata, uint64_t alignment) {
  const auto tensors = mixed_tensors();
  write_gguf(path, metadata, tensors);
  const GgufContents c = read_gguf(path);
  EXPECT_EQ(c.version, 3u);
  EXPECT_EQ(c.alignment, alignment);
  EXPECT_EQ(c.metadata, metadata);
  EXPECT_EQ(c.data_offset % alignment, 0u);
  ASSERT_EQ(c.tensors.size(), tensors.size());
  uint64_t end = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    const GgufTensorInfo& info = c.tensors[i];
    EXPECT_EQ(info.name, tensors[i].name);
    EXPECT_EQ(info.offset % alignment, 0u) << "offset " << info.offset;
    EXPECT_GE(info.offset, end) << "tensors are written in order without overlap";
    end = info.offset + info.nbytes;
    // ggml dims are the row-major shape reversed.
    const Shape& s = tensors[i].tensor.shape();
    ASSERT_EQ(info.ggml_dims.size(), s.size());
    for (size_t d = 0; d < s.size(); ++d) EXPECT_EQ(info.ggml_dims[d], static_cast<uint64_t>(s[s.size() - 1 - d]));
    EXPECT_TRUE(same_bytes(c.tensor(info), tensors[i].tensor));
  }
  // The file ends with the last tensor padded to the alignment.
  const uint64_t padded = end + (alignment - end % alignment) % alignment;
  EXPECT_EQ(std::filesystem::file_size(path), c.data_offset + padded);
}

TEST(GgufRoundTrip, EveryValueTypeAndTensorShapeDefaultAlignment) {
  TempDir dir;
  expect_roundtrip(dir.file("a.gguf"), every_value_type(), 32);
}

TEST(GgufRoundTrip, CustomAlignmentIsHonoured) {
  for (const uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(alignment);
    TempDir dir;
    GgufMetadata m = every_value_type();
    m.add("general.alignment", alignment);
    expect_roundtrip(dir.file("a.gguf"), m, alignment);
  }
}

TEST(GgufRoundTrip, NoMetadataNoTensors) {
  TempDir dir;
  const auto path = dir.file("empty.gguf");
  write_gguf(path, {}, {});
  const GgufContents c = read_gguf(path);
  EXPECT_TRUE(c.metadata.empty());
  EXPECT_TRUE(c.tensors.empty());
  EXPECT_EQ(std::filesystem::file_size(path), 32u);  // 24-byte header padded to 32
}

TEST(GgufRoundTrip, TensorsAreZeroCopyViewsOfTheMapping) {
  TempDir dir;
  const auto path = dir.file("a.gguf");
  write_gguf(path, {}, mixed_tensors());
  const GgufContents c = read_gguf(path);
  const Tensor t = c.tensor(*c.find("mat_f16"));
  EXPECT_FALSE(t.writable());
  EXPECT_EQ(t.bytes(), c.file_bytes.data() + c.data_offset + c.find("mat_f16")->offset);
  // The view outlives the contents it came from.
  std::vector<NamedTensor> all = c.named_tensors();
  const GgufContents again = read_gguf(path);
  EXPECT_TRUE(same_bytes(all[2].tensor, again.tensor(again.tensors[2])));
}

TEST(GgufRoundTrip, ExactBytesOfATinyFile) {
  TempDir dir;
  const auto path = dir.file("tiny.gguf");
  GgufMetadata m;
  m.add("a", uint32_t{7});
  const std::vector<NamedTensor> tensors = {{"t", Tensor::from_f32(std::vector<float>{1.0f, -2.0f}, {2})}};
  write_gguf(path, m, tensors);

  // Assembled by hand from the spec.
  Bytes expected;
  append(expected, "GGUF", 4);
  auto u32 = [&](uint32_t v) { append(expected, &v, 4); };
  auto u64 = [&](uint64_t v) { append_u64(expected, v); };
  u32(3);       // version
  u64(1);       // tensor_count
  u64(1);       // metadata_kv_count
  u64(1);       // key length
  append(expected, "a", 1);
  u32(4);       // uint32
  u32(7);
  u64(1);       // name length
  append(expected, "t", 1);
  u32(1);       // n_dims
  u64(2);       // dims[0]
  u32(0);       // F32
  u64(0);       // offset
  ASSERT_EQ(expected.size(), 74u);
  expected.resize(96, std::byte{0});  // padding to 32
  const float data[2] = {1.0f, -2.0f};
  append(expected, data, sizeof data);
  expected.resize(128, std::byte{0});  // the tensor padded to 32 as well
  EXPECT_EQ(read_bytes(path), expected);

  std::vector<uint64_t> offsets;
  const auto header = gguf_header(m, {{"t", GgmlType::F32, {2}}}, &offsets);
  EXPECT_EQ(header.size(), 96u);
  EXPECT_EQ(offsets, std::vector<uint64_t>{0});
}

TEST(GgufRoundTrip, WriterConvertsBetweenFloatTypes) {
  TempDir dir;
  const auto path = dir.file("conv.gguf");
  const Tensor src = random_f32({4, 33}, 9);
  {
    GgufWriter w(path, {},
                 {{"as_f16", GgmlType::F16, {4, 33}},
                  {"as_bf16", GgmlType::BF16, {4, 33}},
                  {"back_to_f32", GgmlType::F32, {4, 33}}});
    w.write("as_f16", src);
    w.write("as_bf16", src);
    w.write("back_to_f32", src.cast(DType::BF16));
    w.finish();
  }
  const GgufContents c = read_gguf(path);
  const Tensor f16 = c.tensor(*c.find("as_f16"));
  const Tensor bf16 = c.tensor(*c.find("as_bf16"));
  const Tensor f32 = c.tensor(*c.find("back_to_f32"));
  ASSERT_EQ(f16.dtype(), DType::F16);
  ASSERT_EQ(bf16.dtype(), DType::BF16);
  ASSERT_EQ(f32.dtype(), DType::F32);
  const float* x = src.data<float>();
  for (int64_t i = 0; i < src.numel(); ++i) {
    EXPECT_EQ(f16.data<uint16_t>()[i], f32_to_f16(x[i]));
    EXPECT_EQ(bf16.data<uint16_t>()[i], f32_to_bf16(x[i]));
    EXPECT_EQ(f32.data<float>()[i], bf16_to_f32(f32_to_bf16(x[i])));
  }
}

TEST(GgufRoundTrip, WriterRejectsImpossibleConversions) {
  TempDir dir;
  const auto path = dir.file("x.gguf");
  GgufWriter w(path, {}, {{"a", GgmlType::I32, {2}}});
  expect_error([&] { w.write("a", Tensor::zeros(DType::F32, {2})); }, {path, "\"a\" is F32", "planned as I32"});
}

TEST(GgufRoundTrip, CodecBlockTypesReadDequantizedOthersAreNotSupported) {
  TempDir dir;
  const auto path = dir.file("q.gguf");
  std::vector<std::byte> blocks(2 * 34, std::byte{0x11});  // two Q8_0 blocks
  std::vector<std::byte> q8k(292, std::byte{0});            // one Q8_K block: no codec
  {
    GgufWriter w(path, {}, {{"q", GgmlType::Q8_0, {1, 64}}, {"f", GgmlType::F32, {3}}, {"k", GgmlType::Q8_K, {256}}});
    w.write_raw("q", blocks);
    w.write("f", Tensor::zeros(DType::F32, {3}));
    w.write_raw("k", q8k);
    w.finish();
  }
  const GgufContents c = read_gguf(path);
  const GgufTensorInfo& q = *c.find("q");
  EXPECT_EQ(q.type, GgmlType::Q8_0);
  EXPECT_EQ(q.nbytes, 68u);
  EXPECT_EQ(q.shape, (Shape{1, 64}));
  const auto raw = c.tensor_bytes(q);
  EXPECT_TRUE(std::equal(raw.begin(), raw.end(), blocks.begin(), blocks.end()));
  // d = fp16 0x1111, every code 0x11 = 17.
  const Tensor t = c.tensor(q);
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_EQ(t.shape(), (Shape{1, 64}));
  for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(t.data<float>()[i], 17.0f * f16_to_f32(0x1111));
  expect_error([&] { (void)c.tensor(*c.find("k")); }, {path, "\"k\" is Q8_K, which is not supported yet"});
  expect_error([&] { (void)c.named_tensors(); }, {"not supported yet"});
  expect_error([&] { (void)open_checkpoint(path); }, {path, "Q8_K", "not supported yet"});
  EXPECT_NO_THROW((void)c.tensor(*c.find("f")));
}

TEST(GgufRoundTrip, TypeTable) {
  EXPECT_EQ(ggml_type_name(GgmlType::Q4_K), "Q4_K");
  EXPECT_EQ(ggml_type_name(static_cast<GgmlType>(4)), "unknown ggml type 4");
  EXPECT_EQ(find_ggml_type(GgmlType::Q4_0)->block_size, 32u);
  EXPECT_EQ(find_ggml_type(GgmlType::Q4_0)->type_size, 18u);
  EXPECT_EQ(find_ggml_type(GgmlType::Q6_K)->type_size, 210u);
  EXPECT_EQ(ggml_type_from_dtype(DType::BF16), GgmlType::BF16);
  EXPECT_EQ(ggml_type_from_dtype(DType::U8), std::nullopt);
  EXPECT_EQ(ggml_nbytes(GgmlType::Q4_K, {3, 512}), 3u * 2 * 144);
  expect_error([] { (void)ggml_nbytes(GgmlType::Q4_0, {3, 33}); }, {"not a multiple of the 32-element Q4_0 block"});
  for (const auto& t : ggml_types()) EXPECT_EQ(find_ggml_type(t.type), &t);
}

TEST(GgufMetadataTest, TypedGettersNameKeyAndTypes) {
  GgufMetadata m = every_value_type();
  EXPECT_EQ(m.get<uint32_t>("test.u32"), 4000000000u);
  EXPECT_EQ(m.get<std::string>("test.string"), "héllo wörld");
  EXPECT_EQ(m.get<std::vector<std::string>>("test.arr.string").size(), 4u);
  EXPECT_EQ(m.get_uint("test.u8"), 250u);
  EXPECT_EQ(m.get_int("test.i64"), -9000000000000000000);
  EXPECT_DOUBLE_EQ(m.get_float("test.f32"), 1e-5f);
  EXPECT_EQ(m.get_optional<bool>("nope"), std::nullopt);
  EXPECT_EQ(m.get_optional<bool>("test.bool_true"), true);
  expect_error([&] { (void)m.get<uint32_t>("nope"); }, {"metadata key \"nope\" is missing"});
  expect_error([&] { (void)m.get<std::string>("test.u32"); }, {"\"test.u32\" has type uint32, expected string"});
  expect_error([&] { (void)m.get<std::vector<float>>("test.arr.i32"); },
               {"\"test.arr.i32\" has type array of int32, expected array of float32"});
  expect_error([&] { (void)m.get_optional<float>("test.f64"); }, {"has type float64, expected float32"});
  expect_error([&] { (void)m.get_uint("test.i8"); }, {"\"test.i8\" is -7", "non-negative"});
  expect_error([&] { (void)m.get_uint("test.string"); }, {"has type string, expected an unsigned integer"});
  expect_error([&] { (void)m.get_int("test.u64"); }, {"beyond the int64 range"});
  expect_error([&] { m.add("test.u8", uint8_t{1}); }, {"duplicate metadata key \"test.u8\""});
  m.set("test.u8", "now a string");
  EXPECT_EQ(m.entries()[0].first, "test.u8");  // set keeps the position
  EXPECT_TRUE(m.erase("test.u8"));
  EXPECT_FALSE(m.contains("test.u8"));
  EXPECT_EQ(m.get<int8_t>("test.i8"), -7);  // the index survives an erase
}

TEST(GgufMetadataTest, ValuesPrintOnOneLine) {
  const GgufMetadata m = every_value_type();
  EXPECT_EQ(m.at("test.u8").to_string(), "250");
  EXPECT_EQ(m.at("test.i8").to_string(), "-7");
  EXPECT_EQ(m.at("test.f32").to_string(), "1e-05");
  EXPECT_EQ(m.at("test.bool_true").to_string(), "true");
  EXPECT_EQ(m.at("test.string").to_string(), "héllo wörld");
  EXPECT_EQ(m.at("test.arr.u32").to_string(), "[3 x uint32: 7, 8, 9]");
  EXPECT_EQ(m.at("test.arr.bool").to_string(2), "[3 x bool: true, false, ...]");
  EXPECT_EQ(m.at("test.arr.empty_string").to_string(), "[0 x string]");
  EXPECT_EQ(GgufValue(std::string("bad\xff")).to_string(), "bad\xEF\xBF\xBD");
}

TEST(GgufRoundTrip, OpenCheckpointRecognizesGguf) {
  TempDir dir;
  GgufMetadata m;
  m.add("general.architecture", "llama");
  m.add("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b"});
  const std::vector<NamedTensor> tensors = {{"blk.0.attn_q.weight", random_f32({4, 8}, 3)}};
  const auto path = dir.file("model.gguf");
  write_gguf(path, m, tensors);
  const auto sniffed = dir.file("model_without_extension");
  std::filesystem::copy_file(path, sniffed);
  for (const auto& p : {path, sniffed}) {
    SCOPED_TRACE(p);
    const Checkpoint ck = open_checkpoint(p);
    EXPECT_EQ(ck.format, "gguf");
    ASSERT_EQ(ck.tensors.size(), 1u);
    ASSERT_NE(ck.find("blk.0.attn_q.weight"), nullptr);
    EXPECT_EQ(ck.find("blk.0.attn_q.weight")->tensor.shape(), (Shape{4, 8}));
    EXPECT_EQ(ck.metadata.at("general.architecture"), "llama");
    EXPECT_EQ(ck.metadata.at("tokenizer.ggml.tokens"), "[2 x string: \"a\", \"b\"]");
  }
}

}  // namespace
}  // namespace qf::formats
