#include "formats/strict_json.h"

#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_EQ(find_invalid_utf8(""), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"), std::nullopt);
}

TEST(Utf8, RejectsMalformedSequences) {
  EXPECT_EQ(find_invalid_utf8("ab\x80"), 2u);                 // lone continuation byte
  EXPECT_EQ(find_invalid_utf8("\xc0\x80"), 0u);               // overlong NUL
  EXPECT_EQ(find_invalid_utf8("\xe0\x80\xaf"), 0u);           // overlong '/'
  EXPECT_EQ(find_invalid_utf8("\xf0\x80\x80\xaf"), 0u);       // overlong '/'
  EXPECT_EQ(find_invalid_utf8("x\xed\xa0\x80"), 1u);          // surrogate U+D800
  EXPECT_EQ(find_invalid_utf8("\xf4\x90\x80\x80"), 0u);       // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(find_invalid_utf8("ok\xe2\x82"), 2u);             // cut short at the end
  EXPECT_EQ(find_invalid_utf8("\xe2\x28\xa1"), 0u);           // bad continuation
}

TEST(StrictJson, KeepsDocumentOrder) {
  const auto j = parse_strict_json(R"({"z": 1, "a": [true, null, 2.5, "s"], "m": {}})");
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"z", "a", "m"}));
  EXPECT_EQ(j["a"].dump(), R"([true,null,2.5,"s"])");
}

TEST(StrictJson, DepthLimitIsExact) {
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_NO_THROW(parse_strict_json(nested(kMaxJsonDepth)));
  expect_error([&] { parse_strict_json(nested(kMaxJsonDepth + 1)); }, {"nested deeper than 64 levels"});
  EXPECT_NO_THROW(parse_strict_json(nested(3), 3));
  expect_error([&] { parse_strict_json(nested(4), 3); }, {"nested deeper than 3 levels"});
}

TEST(StrictJson, RejectsDuplicatesAtAnyDepth) {
  expect_error([] { parse_strict_json(R"({"a": 1, "b": 2, "a": 3})"); }, {"duplicate key \"a\" in the top-level object"});
  expect_error([] { parse_strict_json(R"({"x": [{"k": 1, "k": 1}]})"); }, {"duplicate key \"k\""});
  // The same key in sibling objects is fine.
  EXPECT_NO_THROW(parse_strict_json(R"({"x": {"k": 1}, "y": {"k": 1}})"));
}

TEST(StrictJson, ReportsSyntaxErrorsWithPosition) {
  expect_error([] { parse_strict_json("{\"a\": }"); }, {"invalid JSON", "line 1, column 7"});
  expect_error([] { parse_strict_json("{} {}"); }, {"invalid JSON"});
  expect_error([] { parse_strict_json(std::string("{}\0", 3)); }, {"NUL byte at offset 2"});
  expect_error([] { parse_strict_json("\"\xff\""); }, {"UTF-8", "offset 1"});
  expect_error([] { parse_strict_json(R"("\ud800")"); }, {"invalid JSON"});  // escaped lone surrogate
}

}  // namespace
}  // namespace qf::formats
