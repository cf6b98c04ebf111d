#include "eval/protocol.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "shared_data.h"
#include "tokenizer/load.h"

namespace qf::eval {
namespace {

const std::string kTok = "stories260K/tok512.model";

std::unique_ptr<tokenizer::Tokenizer> stories_tokenizer() {
  return tokenizer::make_tokenizer(tokenizer::load_sentencepiece_model(test::shared_data_path(kTok)));
}

std::string austen(size_t bytes) {
  std::ifstream in(test::shared_data_path("text/austen_pride_and_prejudice.txt"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str().substr(0, bytes);
}

TEST(Protocol, ChunksScoreTheSecondHalfOfEachWindowStartingAtBos) {
  QF_REQUIRE_SHARED_DATA(kTok);
  const auto tok = stories_tokenizer();
  const std::string text = austen(20000);
  // As llama-perplexity: BOS + the text, cut into windows (not the text alone).
  const auto ids = tok->encode(text, true);
  ASSERT_EQ(ids[0], tok->bos_id());
  const ProtocolOptions opt{.protocol = Protocol::Chunks, .n_ctx = 128};
  const auto windows = make_windows(*tok, text, opt);
  ASSERT_EQ(windows.size(), ids.size() / 128);
  for (size_t w = 0; w < windows.size(); ++w) {
    ASSERT_EQ(windows[w].tokens.size(), 128u);
    EXPECT_EQ(windows[w].tokens[0], tok->bos_id());
    EXPECT_EQ(windows[w].first_scored, 64);
    EXPECT_TRUE(std::equal(windows[w].tokens.begin() + 1, windows[w].tokens.end(), ids.begin() + w * 128 + 1));
  }
  ProtocolOptions few = opt;
  few.max_windows = 3;
  EXPECT_EQ(make_windows(*tok, text, few).size(), 3u);
}

TEST(Protocol, StridedScoresEveryTokenOnceWhenWindowsOverlap) {
  QF_REQUIRE_SHARED_DATA(kTok);
  const auto tok = stories_tokenizer();
  const std::string text = austen(6000);
  const auto ids = tok->encode(text, true);
  for (int64_t stride : {16, 50, 64}) {
    const auto windows = make_windows(*tok, text, {.protocol = Protocol::Strided, .n_ctx = 64, .stride = stride});
    std::multiset<int64_t> targets;  // absolute positions of scored tokens
    int64_t begin = 0;
    for (const auto& w : windows) {
      ASSERT_LE(w.tokens.size(), 64u);
      EXPECT_TRUE(std::equal(w.tokens.begin(), w.tokens.end(), ids.begin() + begin));
      for (int64_t j = w.first_scored; j + 1 < static_cast<int64_t>(w.tokens.size()); ++j) targets.insert(begin + j + 1);
      begin += stride;
    }
    if (stride == 64) {
      // Non-overlapping windows: as in Hugging Face's recipe, the first token
      // of each window has no context in it and is not scored.
      ASSERT_EQ(targets.size(), ids.size() - windows.size()) << "stride " << stride;
      for (int64_t t : targets) EXPECT_NE(t % 64, 0);
      EXPECT_EQ(std::set<int64_t>(targets.begin(), targets.end()).size(), targets.size());
      continue;
    }
    ASSERT_EQ(targets.size(), ids.size() - 1) << "stride " << stride;
    int64_t expect = 1;
    for (int64_t t : targets) EXPECT_EQ(t, expect++);
  }
}

TEST(Protocol, LinesStartAtBosAndAreCutToTheContext) {
  QF_REQUIRE_SHARED_DATA(kTok);
  const auto tok = stories_tokenizer();
  const std::string long_line(3000, 'a');
  const std::string text = "one little cat\n\n   \nthe dog ran\r\n" + long_line + "\n";
  const auto windows = make_windows(*tok, text, {.protocol = Protocol::Lines, .n_ctx = 100});
  ASSERT_EQ(windows.size(), 3u);
  EXPECT_EQ(windows[0].tokens, tok->encode("one little cat", true));
  EXPECT_EQ(windows[1].tokens, tok->encode("the dog ran\r", true));  // '\r' is part of the line
  EXPECT_EQ(windows[2].tokens.size(), 100u);
  for (const auto& w : windows) EXPECT_EQ(w.first_scored, 0);
}

TEST(Protocol, TextsWithNothingToScoreAreClearErrors) {
  QF_REQUIRE_SHARED_DATA(kTok);
  const auto tok = stories_tokenizer();
  EXPECT_THROW(make_windows(*tok, "", {.protocol = Protocol::Lines}), Error);
  EXPECT_THROW(make_windows(*tok, "\n \n", {.protocol = Protocol::Lines}), Error);
  try {
    make_windows(*tok, "too short", {.protocol = Protocol::Chunks, .n_ctx = 512});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one 512-token chunk"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_protocol("sliding"), Error);
  EXPECT_EQ(parse_protocol("strided"), Protocol::Strided);
}

}  // namespace
}  // namespace qf::eval
