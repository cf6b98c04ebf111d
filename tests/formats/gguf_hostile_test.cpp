// Hand-assembled GGUF files that no correct writer produces. Each must be a
// qf::Error naming the file and the problem, never a crash or an
// out-of-bounds read (the asan build checks the latter).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

constexpr const char* kHostileGguf = "hostile.gguf";

// Little-endian GGUF pieces, appended in order.
class Builder {
 public:
  Builder& raw(std::string_view s) {
    append(bytes_, s.data(), s.size());
    return *this;
  }
  Builder& u8(uint8_t v) { return put(v); }
  Builder& u32(uint32_t v) { return put(v); }
  Builder& u64(uint64_t v) { return put(v); }
  Builder& f32(float v) { return put(v); }
  Builder& str(std::string_view s) {
    u64(s.size());
    return raw(s);
  }
  Builder& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    raw("GGUF");
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  Builder& kv_u32(std::string_view key, uint32_t v) {
    str(key);
    u32(4);
    return u32(v);
  }
  // A tensor info; dims in ggml order (dims[0] = row length).
  Builder& tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    return u64(offset);
  }
  Builder& pad(size_t alignment = 32) {
    while (bytes_.size() % alignment) bytes_.push_back(std::byte{0});
    return *this;
  }
  Builder& data(size_t n) {
    for (size_t i = 0; i < n; ++i) bytes_.push_back(static_cast<std::byte>(i * 13 + 5));
    return *this;
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  template <typename T>
  Builder& put(T v) {
    append(bytes_, &v, sizeof v);
    return *this;
  }
  Bytes bytes_;
};

void expect_rejected(const Builder& b, std::initializer_list<std::string_view> fragments) {
  expect_error([&] { (void)parse_gguf(b.bytes(), kHostileGguf); }, fragments);
  expect_error([&] { (void)parse_gguf(b.bytes(), kHostileGguf); }, {kHostileGguf});
}

// A valid file: one F32 tensor [2, 4] (ggml dims {4, 2}) of 32 bytes.
Builder valid() {
  Builder b;
  b.header(1, 1).kv_u32("general.alignment", 32).tensor("w", {4, 2}, 0, 0).pad().data(32);
  return b;
}

TEST(GgufHostile, TheBaselineIsValid) {
  const GgufContents c = parse_gguf(valid().bytes(), kHostileGguf);
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_EQ(c.tensors[0].shape, (Shape{2, 4}));
  EXPECT_EQ(c.tensor(c.tensors[0]).nbytes(), 32u);
}

TEST(GgufHostile, ErrorsFromFilesNameThePath) {
  TempDir dir;
  const auto path = dir.file("bad.gguf");
  write_bytes(path, Bytes(10, std::byte{0}));
  expect_error([&] { (void)read_gguf(path); }, {path, "bad magic"});
}

TEST(GgufHostile, BadMagic) {
  Builder b;
  b.raw("GGML").u32(3).u64(0).u64(0);
  expect_rejected(b, {"not a GGUF file: bad magic \"GGML\""});
}

TEST(GgufHostile, TooShort) {
  Builder b;
  b.raw("GG");
  expect_rejected(b, {"file is 2 bytes, too short"});
  Builder c;
  c.raw("GGUF").u32(3);
  expect_rejected(c, {"shorter than the 24-byte GGUF header"});
}

TEST(GgufHostile, UnsupportedVersion) {
  Builder v1;
  v1.header(0, 0, 1);
  expect_rejected(v1, {"unsupported GGUF version 1"});
  Builder v4;
  v4.header(0, 0, 4);
  expect_rejected(v4, {"unsupported GGUF version 4"});
  Builder big_endian;
  big_endian.header(0, 0, 0x03000000);
  expect_rejected(big_endian, {"big-endian GGUF"});
}

TEST(GgufHostile, VersionTwoIsRead) {
  Builder b;
  b.header(1, 0, 2).tensor("w", {4}, 0, 0).pad().data(16);
  EXPECT_EQ(parse_gguf(b.bytes(), kHostileGguf).version, 2u);
}

TEST(GgufHostile, AbsurdTensorCount) {
  Builder b;
  b.header(uint64_t{1} << 40, 0).pad().data(64);
  expect_rejected(b, {"tensor count 1099511627776 is absurd"});
}

TEST(GgufHostile, AbsurdKeyValueCount) {
  Builder b;
  b.header(0, std::numeric_limits<uint64_t>::max(), 3).data(64);
  expect_rejected(b, {"metadata key-value count 18446744073709551615 is absurd"});
}

TEST(GgufHostile, CountsThatFitAloneButNotTogether) {
  Builder b;
  b.header(2, 3).data(2 * 24 + 3 * 13 - 1);
  expect_rejected(b, {"2 tensor infos cannot fit"});
}

TEST(GgufHostile, KeyLongerThanTheFile) {
  Builder b;
  b.header(0, 1).u64(1000).raw("general.name").data(20);
  expect_rejected(b, {"key of metadata pair 0", "has length 1000, beyond"});
}

TEST(GgufHostile, StringValueLongerThanTheFile) {
  Builder b;
  b.header(0, 1).str("general.name").u32(8).u64(uint64_t{1} << 62).raw("abc");
  expect_rejected(b, {"metadata key \"general.name\"", "string value", "has length 4611686018427387904"});
}

TEST(GgufHostile, TensorNameLongerThanTheFile) {
  Builder b;
  b.header(1, 0).u64(500).raw("w").data(30);
  expect_rejected(b, {"name of tensor 0", "has length 500, beyond"});
}

TEST(GgufHostile, ArrayLongerThanTheFile) {
  Builder b;
  b.header(0, 1).str("arr").u32(9).u32(4).u64(uint64_t{1} << 61).u32(1).u32(2);
  expect_rejected(b, {"metadata key \"arr\"", "claims 2305843009213693952 uint32 elements"});
}

TEST(GgufHostile, ArrayOfStringsLongerThanTheFile) {
  Builder b;
  b.header(0, 1).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(1000).str("a").str("b");
  expect_rejected(b, {"\"tokenizer.ggml.tokens\"", "claims 1000 string elements"});
  // Few enough elements to pass the count check, but a string inside overruns.
  Builder c;
  c.header(0, 1).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(2).str("a").u64(99).raw("bcdefgh");
  expect_rejected(c, {"array string", "has length 99"});
}

TEST(GgufHostile, NestedArray) {
  Builder b;
  b.header(0, 1).str("nested").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5);
  expect_rejected(b, {"\"nested\"", "nested arrays are not supported"});
}

TEST(GgufHostile, UnknownValueType) {
  Builder b;
  b.header(0, 1).str("k").u32(13).u64(0);
  expect_rejected(b, {"metadata key \"k\"", "is 13, not a known GGUF value type"});
  Builder c;
  c.header(0, 1).str("k").u32(9).u32(77).u64(0).data(8);
  expect_rejected(c, {"array element type", "is 77"});
}

TEST(GgufHostile, BoolOtherThanZeroOrOne) {
  Builder b;
  b.header(0, 1).str("flag").u32(7).u8(2).pad();
  expect_rejected(b, {"\"flag\"", "bool value at offset", "is 2"});
}

TEST(GgufHostile, DuplicateKey) {
  Builder b;
  b.header(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).pad();
  expect_rejected(b, {"metadata key \"a.b\": duplicate key"});
}

TEST(GgufHostile, DuplicateTensorName) {
  Builder b;
  b.header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad().data(64);
  expect_rejected(b, {"tensor \"w\": duplicate tensor name"});
}

TEST(GgufHostile, TooManyDimensions) {
  Builder b;
  b.header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad().data(32);
  expect_rejected(b, {"tensor \"w\"", "n_dims is 5; GGUF tensors have at most 4"});
}

TEST(GgufHostile, DimensionProductOverflows) {
  Builder b;
  b.header(1, 0).tensor("w", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0).pad().data(32);
  expect_rejected(b, {"tensor \"w\"", "overflows"});
  // A zero dimension must not hide the overflow of the others.
  Builder c;
  c.header(1, 0).tensor("w", {0, uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0).pad().data(32);
  expect_rejected(c, {"tensor \"w\"", "overflows"});
  Builder d;
  d.header(1, 0).tensor("w", {uint64_t{1} << 63}, 0, 0).pad().data(32);
  expect_rejected(d, {"tensor \"w\"", "dimension 0 is 9223372036854775808, too large"});
  // Element count fits int64, but the bytes of 4-byte elements would not.
  Builder e;
  e.header(1, 0).tensor("w", {uint64_t{1} << 61, 2}, 0, 0).pad().data(32);
  expect_rejected(e, {"tensor \"w\"", "overflows"});
}

TEST(GgufHostile, UnknownGgmlType) {
  Builder b;
  b.header(1, 0).tensor("w", {4}, 4, 0).pad().data(32);  // 4 = the removed Q4_2
  expect_rejected(b, {"tensor \"w\"", "unknown ggml type 4"});
  Builder c;
  c.header(1, 0).tensor("w", {4}, 1000, 0).pad().data(32);
  expect_rejected(c, {"unknown ggml type 1000"});
}

TEST(GgufHostile, RowNotAMultipleOfTheBlock) {
  Builder b;
  b.header(1, 0).tensor("q", {33}, 2, 0).pad().data(64);  // Q4_0, 32-element blocks
  expect_rejected(b, {"tensor \"q\"", "row length 33", "not a multiple of the 32-element Q4_0 block"});
}

TEST(GgufHostile, OffsetBeyondTheFile) {
  Builder b;
  b.header(1, 0).tensor("w", {4}, 0, 1024).pad().data(32);
  expect_rejected(b, {"tensor \"w\": data [1024, 1024+16) extends beyond the 32-byte data section"});
  Builder c;
  c.header(1, 0).tensor("w", {4}, 0, std::numeric_limits<uint64_t>::max() - 31).pad().data(32);
  expect_rejected(c, {"tensor \"w\"", "extends beyond"});
}

TEST(GgufHostile, TensorDataTruncated) {
  Builder b;
  b.header(1, 0).tensor("w", {100}, 0, 0).pad().data(64);
  expect_rejected(b, {"tensor \"w\": data [0, 0+400) extends beyond the 64-byte data section"});
}

TEST(GgufHostile, MisalignedOffset) {
  Builder b;
  b.header(1, 0).tensor("w", {4}, 0, 4).pad().data(32);
  expect_rejected(b, {"tensor \"w\"", "data offset 4 is misaligned", "alignment 32"});
  // With a custom alignment, offsets must follow it.
  Builder c;
  c.header(1, 1).kv_u32("general.alignment", 64).tensor("w", {4}, 0, 32).pad(64).data(64);
  expect_rejected(c, {"data offset 32 is misaligned", "alignment 64"});
}

TEST(GgufHostile, OverlappingTensors) {
  Builder b;
  b.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32).pad().data(64);
  expect_rejected(b, {"tensors \"a\" (data [0, 64)) and \"b\" (data [32, 48)) overlap"});
  Builder c;  // the same offset twice
  c.header(2, 0).tensor("a", {4}, 0, 0).tensor("b", {4}, 0, 0).pad().data(32);
  expect_rejected(c, {"overlap"});
}

TEST(GgufHostile, AlignmentNotAPowerOfTwo) {
  for (const uint32_t a : {0u, 24u, 33u}) {
    SCOPED_TRACE(a);
    Builder b;
    b.header(0, 1).kv_u32("general.alignment", a).pad();
    expect_rejected(b, {"general.alignment is " + std::to_string(a) + "; it must be a power of two"});
  }
  Builder wrong_type;
  wrong_type.header(0, 1).str("general.alignment").u32(10).u64(32).pad();
  expect_rejected(wrong_type, {"general.alignment must be a uint32, got uint64"});
}

TEST(GgufHostile, TruncatedInTheMiddleOfAValue) {
  const Bytes full = valid().bytes();
  // Every strict prefix is either a clean error or (past the tensor infos and
  // the padding) still rejected because the tensor data is missing.
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    expect_error([&] { (void)parse_gguf(cut, kHostileGguf); }, {kHostileGguf});
  }
  Builder b;
  b.header(0, 1).str("k").u32(6).raw("ab");
  expect_rejected(b, {"float32 value at offset", "needs 4 bytes but only 2 remain"});
}

TEST(GgufHostile, DataSectionStartsBeyondTheFile) {
  Builder b;
  b.header(1, 0).tensor("w", {0}, 0, 0);  // an empty tensor, but the padding is missing
  expect_rejected(b, {"data section would start at offset 64"});
}

}  // namespace
}  // namespace qf::formats
