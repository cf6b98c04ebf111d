// TextStream: UTF-8 split over byte tokens is held back until whole; text
// that may start a stop string is held back until resolved; a stop string is
// cut with everything after it; ill-formed bytes become U+FFFD.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/text_stream.h"

namespace qf::server {
namespace {

std::string feed(TextStream& ts, const std::vector<std::string>& pieces, std::vector<std::string>* deltas = nullptr) {
  std::string out;
  for (const std::string& p : pieces) {
    const std::string d = ts.push(p);
    if (deltas) deltas->push_back(d);
    out += d;
  }
  return out;
}

TEST(Utf8, ValidityAndSanitizing) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("\xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xFF"));
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(valid_utf8("\xE2\x82"));          // cut short
  EXPECT_EQ(sanitize_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(incomplete_utf8_tail("ab\xE2\x82"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("ab\xE2\x82\xAC"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
}

TEST(TextStream, HoldsSplitCharactersUntilWhole) {
  TextStream ts;
  std::vector<std::string> deltas;
  // "€" = E2 82 AC arriving as three byte tokens, then "😀" as four.
  const std::string out = feed(ts, {"a", "\xE2", "\x82", "\xAC", "b", "\xF0", "\x9F", "\x98", "\x80"}, &deltas);
  EXPECT_EQ(out, "a\xE2\x82\xAC" "b\xF0\x9F\x98\x80");
  EXPECT_EQ(deltas[1], "");
  EXPECT_EQ(deltas[2], "");
  EXPECT_EQ(deltas[3], "\xE2\x82\xAC");
  for (const std::string& d : deltas) EXPECT_TRUE(valid_utf8(d)) << d;
  EXPECT_EQ(ts.finish(), "");
}

TEST(TextStream, AnUnfinishedCharacterAtTheEndBecomesReplacement) {
  TextStream ts;
  EXPECT_EQ(ts.push("x\xE2\x82"), "x");
  EXPECT_EQ(ts.finish(), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TextStream, StopStringAcrossPiecesIsCutAndNothingOfItLeaks) {
  TextStream ts({"\nUser:"});
  std::vector<std::string> deltas;
  const std::string out = feed(ts, {"Hello", " there", "\n", "Us", "er", ": more"}, &deltas);
  EXPECT_EQ(out, "Hello there");
  EXPECT_TRUE(ts.stopped());
  EXPECT_EQ(deltas[2], "");  // "\n" might start the stop string
  EXPECT_EQ(ts.push("anything"), "");
  EXPECT_EQ(ts.finish(), "");
}

TEST(TextStream, AHeldPrefixIsReleasedWhenTheStopStringDoesNotFollow) {
  TextStream ts({"STOP", "xy"});
  EXPECT_EQ(ts.push("ab S"), "ab ");
  EXPECT_EQ(ts.push("T"), "");
  EXPECT_EQ(ts.push("ay"), "STay");  // "STa" is no prefix of STOP; "y" is no prefix of "xy"
  EXPECT_EQ(ts.push("x"), "");
  EXPECT_FALSE(ts.stopped());
  EXPECT_EQ(ts.finish(), "x");
}

TEST(TextStream, EarliestOfSeveralStopStringsWins) {
  TextStream ts({"world", "lo"});
  EXPECT_EQ(ts.push("hello world"), "hel");
  EXPECT_TRUE(ts.stopped());
}

}  // namespace
}  // namespace qf::server
