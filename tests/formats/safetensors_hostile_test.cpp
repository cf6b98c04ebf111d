// Malformed safetensors files, assembled byte by byte. Each must fail with a
// qf::Error naming the file and the problem, never crash or read out of bounds
// (the asan build checks the latter).
#include <gtest/gtest.h>

#include <string>

#include "formats/safetensors.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

constexpr const char* kHostileSafetensors = "hostile.safetensors";

void expect_rejected(const Bytes& bytes, std::initializer_list<std::string_view> fragments) {
  expect_error([&] { parse_safetensors(bytes, kHostileSafetensors); }, {kHostileSafetensors});
  expect_error([&] { parse_safetensors(bytes, kHostileSafetensors); }, fragments);
}

// One well-formed U8 [4] entry with the given fields replaced.
std::string entry(const std::string& dtype = R"("U8")", const std::string& shape = "[4]",
                  const std::string& offsets = "[0,4]") {
  return R"({"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

TEST(SafetensorsHostile, ShorterThanEightBytes) {
  expect_rejected(Bytes(5, std::byte{0}), {"5 bytes", "shorter than the 8-byte"});
  expect_rejected(Bytes{}, {"0 bytes"});
}

TEST(SafetensorsHostile, HeaderLengthBeyondTheFile) {
  Bytes b;
  append_u64(b, 100);
  append(b, "{}", 2);
  expect_rejected(b, {"header length 100", "beyond the end"});
}

TEST(SafetensorsHostile, AbsurdHeaderLength) {
  Bytes b;
  append_u64(b, uint64_t{1} << 62);
  append(b, "{}", 2);
  expect_rejected(b, {"absurdly large"});
  Bytes max;
  append_u64(max, ~uint64_t{0});  // 8 + n would wrap around
  expect_rejected(max, {"absurdly large"});
}

TEST(SafetensorsHostile, HeaderNotJson) {
  expect_rejected(safetensors_bytes(R"({"w": {"dtype": "F32",)"), {"header", "invalid JSON"});
  expect_rejected(safetensors_bytes(R"({"w": 1} trailing)"), {"invalid JSON"});
  expect_rejected(safetensors_bytes(""), {"invalid JSON"});
}

TEST(SafetensorsHostile, HeaderWithNulByte) {
  // nlohmann would stop at the NUL and accept the prefix.
  expect_rejected(safetensors_bytes(std::string("{}\0garbage", 10)), {"NUL byte"});
}

TEST(SafetensorsHostile, HeaderNotUtf8) {
  expect_rejected(safetensors_bytes("{\"w\xff\":" + entry() + "}", 4), {"UTF-8", "0xFF"});
  expect_rejected(safetensors_bytes("{\"\xc0\xaf\":" + entry() + "}", 4), {"UTF-8"});          // overlong '/'
  expect_rejected(safetensors_bytes("{\"\xed\xa0\x80\":" + entry() + "}", 4), {"UTF-8"});      // surrogate
  expect_rejected(safetensors_bytes("{\"w\":" + entry() + ",\"\xe2\x82\"}", 4), {"UTF-8"});    // cut short
}

TEST(SafetensorsHostile, DeeplyNestedJson) {
  const int depth = 200000;  // would overflow the stack of a recursive parser
  expect_rejected(safetensors_bytes(std::string(depth, '[') + std::string(depth, ']')), {"nested deeper than"});
  std::string objects;
  for (int i = 0; i < 1000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(1000, '}');
  expect_rejected(safetensors_bytes(objects), {"nested deeper than"});
  // Unclosed: must stop at the limit, not at the end of input.
  expect_rejected(safetensors_bytes(std::string(depth, '[')), {"nested deeper than"});
}

TEST(SafetensorsHostile, HeaderNotAnObject) {
  expect_rejected(safetensors_bytes("[1, 2]"), {"header must be a JSON object", "array"});
  expect_rejected(safetensors_bytes("\"w\""), {"header must be a JSON object", "string"});
}

TEST(SafetensorsHostile, EntryMissingFields) {
  expect_rejected(safetensors_bytes(R"({"w":{"shape":[4],"data_offsets":[0,4]}})", 4), {"\"w\"", "missing \"dtype\""});
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"U8","data_offsets":[0,4]}})", 4), {"\"w\"", "missing \"shape\""});
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"U8","shape":[4]}})", 4), {"\"w\"", "missing \"data_offsets\""});
}

TEST(SafetensorsHostile, EntryWithWrongTypes) {
  expect_rejected(safetensors_bytes(R"({"w":[1,2]})"), {"\"w\"", "entry must be an object"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry("5") + "}", 4), {"\"w\"", "\"dtype\" must be a string"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "\"4\"") + "}", 4), {"\"shape\" must be an array"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[\"4\"]") + "}", 4),
                  {"\"shape\" element 0", "non-negative integer"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[4]", "[0]") + "}", 4),
                  {"\"data_offsets\" must be [begin, end]"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[4]", "[0,4,8]") + "}", 4),
                  {"\"data_offsets\" must be [begin, end]"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[4]", "[0,4.0]") + "}", 4),
                  {"\"data_offsets\" must be [begin, end]"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[4]", "[-4,0]") + "}", 4),
                  {"\"data_offsets\" must be [begin, end]"});
}

TEST(SafetensorsHostile, UnknownDtype) {
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("F4")") + "}", 4), {"\"w\"", "unknown dtype \"F4\"", "BF16"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("f32")") + "}", 4), {"unknown dtype"});
}

TEST(SafetensorsHostile, NegativeOrFractionalDims) {
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[-1,4]") + "}", 4),
                  {"\"w\"", "element 0 is -1", "non-negative integer"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[2,1.5]") + "}", 4), {"element 1 is 1.5"});
  // Beyond int64, which Shape holds.
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[9223372036854775808]") + "}", 4),
                  {"non-negative integer"});
}

TEST(SafetensorsHostile, OverflowingShape) {
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("F32")", "[4294967296,4294967296]") + "}", 4),
                  {"\"w\"", "overflows"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("F64")", "[4611686018427387904]") + "}", 4), {"overflows"});
}

TEST(SafetensorsHostile, DataOffsetsBeginAfterEnd) {
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[0]", "[4,0]") + "}", 4),
                  {"\"w\"", "data_offsets [4, 0]", "begin > end"});
}

TEST(SafetensorsHostile, TruncatedData) {
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("F32")", "[4]", "[0,16]") + "}", 10),
                  {"\"w\"", "data_offsets end 16", "10-byte data section", "truncated"});
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("U8")", "[1]", "[18446744073709551614,18446744073709551615]") +
                                    "}"),
                  {"truncated"});
}

TEST(SafetensorsHostile, ByteCountDiffersFromShape) {
  expect_rejected(safetensors_bytes("{\"w\":" + entry(R"("F32")", "[4]", "[0,12]") + "}", 12),
                  {"\"w\"", "span 12 bytes", "F32 x shape [4] needs 16 bytes"});
}

TEST(SafetensorsHostile, OverlappingDataOffsets) {
  const std::string h = "{\"a\":" + entry(R"("U8")", "[4]", "[0,4]") + ",\"b\":" + entry(R"("U8")", "[4]", "[2,6]") + "}";
  expect_rejected(safetensors_bytes(h, 6), {"\"b\"", "overlap", "\"a\""});
  // Two names for the same bytes.
  const std::string same = "{\"a\":" + entry() + ",\"b\":" + entry() + "}";
  expect_rejected(safetensors_bytes(same, 4), {"overlap"});
}

TEST(SafetensorsHostile, HoleBetweenTensors) {
  const std::string h = "{\"a\":" + entry(R"("U8")", "[4]", "[0,4]") + ",\"b\":" + entry(R"("U8")", "[4]", "[6,10]") + "}";
  expect_rejected(safetensors_bytes(h, 10), {"\"b\"", "bytes [4, 6)", "contiguous"});
  expect_rejected(safetensors_bytes("{\"a\":" + entry(R"("U8")", "[4]", "[2,6]") + "}", 6), {"bytes [0, 2)"});
}

TEST(SafetensorsHostile, TrailingBytesAfterLastTensor) {
  expect_rejected(safetensors_bytes("{\"w\":" + entry() + "}", 9), {"9 bytes", "cover only 4", "trailing"});
}

TEST(SafetensorsHostile, DuplicateTensorName) {
  const std::string h = "{\"w\":" + entry(R"("U8")", "[4]", "[0,4]") + ",\"w\":" + entry(R"("U8")", "[4]", "[4,8]") + "}";
  expect_rejected(safetensors_bytes(h, 8), {"duplicate key \"w\"", "top-level"});
  // Duplicate fields inside an entry are just as ambiguous.
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"U8","dtype":"F32","shape":[4],"data_offsets":[0,4]}})", 4),
                  {"duplicate key \"dtype\" in object \"w\""});
}

TEST(SafetensorsHostile, MetadataNotAStringMap) {
  expect_rejected(safetensors_bytes(R"({"__metadata__":{"n":1}})"), {"__metadata__", "\"n\" is number"});
  expect_rejected(safetensors_bytes(R"({"__metadata__":["a"]})"), {"__metadata__", "got array"});
  expect_rejected(safetensors_bytes(R"({"__metadata__":{"a":{"b":"c"}}})"), {"__metadata__", "\"a\" is object"});
  expect_rejected(safetensors_bytes(R"({"__metadata__":{"a":"1","a":"2"}})"), {"duplicate key \"a\""});
}

TEST(SafetensorsHostile, MessagesStayOneBoundedLine) {
  // Names come from the file: escaped and cut, so the CLI's one-line error holds.
  try {
    parse_safetensors(safetensors_bytes("{\"a\\nb\":" + entry(R"("F4")") + "}", 4), kHostileSafetensors);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(R"(tensor "a\nb")"), std::string::npos) << e.what();
  }
  const std::string long_name(100000, 'x');
  const std::string unterminated = "{\"" + long_name;
  for (const auto& header : {"{\"" + long_name + "\":" + entry(R"("F4")") + "}", unterminated}) {
    try {
      parse_safetensors(safetensors_bytes(header, 4), kHostileSafetensors);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_LT(std::string(e.what()).size(), 1000u);
    }
  }
}

TEST(SafetensorsHostile, FileErrorsNameThePath) {
  TempDir dir;
  const auto path = dir.file("short.safetensors");
  write_bytes(path, Bytes(3, std::byte{1}));
  expect_error([&] { read_safetensors(path); }, {path, "shorter than the 8-byte"});
  expect_error([&] { read_safetensors(dir.file("missing.safetensors")); }, {"missing.safetensors", "cannot open"});
}

}  // namespace
}  // namespace qf::formats
