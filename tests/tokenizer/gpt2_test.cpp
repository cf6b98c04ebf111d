// GPT-2 byte-level BPE: known ids, an independent Python reference on real
// text, round trips.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/load.h"
#include "tokenizer/tokenizer.h"

namespace qf::tokenizer {
namespace {

using testing::data_path;

const Tokenizer& gpt2() {
  static const auto tok = make_tokenizer(
      load_gpt2_bpe(data_path("tokenizers/gpt2/encoder.json"), data_path("tokenizers/gpt2/vocab.bpe")));
  return *tok;
}

#define REQUIRE_GPT2() QF_REQUIRE_SHARED("tokenizers/gpt2/encoder.json", "tokenizers/gpt2/vocab.bpe")

using Ids = std::vector<int32_t>;

TEST(Gpt2, VocabularyShape) {
  REQUIRE_GPT2();
  const Vocab& v = gpt2().vocab();
  EXPECT_EQ(v.kind, VocabKind::ByteLevelBPE);
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(v.merges.size(), 50000u);
  EXPECT_EQ(gpt2().eos_id(), 50256);
  EXPECT_EQ(gpt2().bos_id(), 50256);
  EXPECT_FALSE(v.add_bos);
  EXPECT_EQ(v.types[50256], TokenType::Control);
}

TEST(Gpt2, KnownIds) {
  REQUIRE_GPT2();
  const Tokenizer& t = gpt2();
  EXPECT_EQ(t.encode("Hello world", false), (Ids{15496, 995}));
  EXPECT_EQ(t.encode(" Hello", false), (Ids{18435}));
  EXPECT_EQ(t.encode("Hello, world!", false), (Ids{15496, 11, 995, 0}));
  EXPECT_EQ(t.encode("I'm", false), (Ids{40, 1101}));
  EXPECT_EQ(t.encode("Hello world", true), (Ids{50256, 15496, 995}));
  EXPECT_EQ(t.encode("", false), Ids{});
  EXPECT_EQ(t.encode("\n", false), (Ids{198}));
  EXPECT_EQ(t.encode("\n\n", false), (Ids{628}));
  EXPECT_EQ(t.encode(" ", false), (Ids{220}));
  // "<|endoftext|>" in text is plain text, never the control token.
  EXPECT_EQ(t.encode("<|endoftext|>", false), (Ids{27, 91, 437, 1659, 5239, 91, 29}));
}

// Runs the Python reference on `lines`; empty result if python3 is unavailable.
std::vector<Ids> reference_ids(const std::vector<std::string>& lines, const testing::TempDir& tmp) {
  std::string input;
  for (const auto& l : lines) input += nlohmann::json(l).dump() + "\n";
  const std::string in = tmp.write("in.jsonl", input);
  const std::string out = tmp.file("out.jsonl");
  const std::string cmd = "python3 '" + std::string(QF_SOURCE_DIR) + "/tests/tokenizer/gpt2_reference.py' '" +
                          data_path("tokenizers/gpt2/encoder.json") + "' '" +
                          data_path("tokenizers/gpt2/vocab.bpe") + "' < '" + in + "' > '" + out + "'";
  std::vector<Ids> result;
  if (std::system(cmd.c_str()) != 0) return result;
  std::istringstream s(testing::read_file(out));
  for (std::string line; std::getline(s, line);) result.push_back(nlohmann::json::parse(line).get<Ids>());
  return result;
}

TEST(Gpt2, AgreesWithPythonReference) {
  REQUIRE_GPT2();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt");
  if (testing::run_command("command -v python3").empty()) GTEST_SKIP() << "python3 is not installed";
  // 200 lines from the middle of the novel (past the front matter), whole
  // paragraphs as single strings, and the tricky strings.
  std::vector<std::string> lines =
      testing::read_lines(data_path("text/austen_pride_and_prejudice.txt"), true, 200, 500);
  ASSERT_EQ(lines.size(), 200u);
  const std::string text = testing::read_file(data_path("text/austen_pride_and_prejudice.txt"));
  lines.push_back(text.substr(20000, 3000));  // newlines, blank lines, indentation
  for (const auto& s : testing::tricky_strings()) lines.push_back(s);
  lines.push_back("  \n  \n\t x  y\n");
  lines.push_back("'s 's'S ''s !'s 'll've're'd'm 't");
  lines.push_back("a  b   c    d\n\n\ne");
  lines.push_back("price: $3.50, 100% (approx.) -- ok?!");

  testing::TempDir tmp;
  const std::vector<Ids> expected = reference_ids(lines, tmp);
  ASSERT_EQ(expected.size(), lines.size()) << "the Python reference failed";
  size_t total = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const Ids got = gpt2().encode(lines[i], false);
    EXPECT_EQ(got, expected[i]) << "line " << i << ": " << nlohmann::json(lines[i]).dump();
    total += got.size();
  }
  EXPECT_GT(total, 3000u);
}

TEST(Gpt2, WholeNovelAgreesWithPythonReference) {
  REQUIRE_GPT2();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt");
  if (testing::run_command("command -v python3").empty()) GTEST_SKIP() << "python3 is not installed";
  const std::string text = testing::read_file(data_path("text/austen_pride_and_prejudice.txt"));
  testing::TempDir tmp;
  const std::vector<Ids> expected = reference_ids({text}, tmp);
  ASSERT_EQ(expected.size(), 1u) << "the Python reference failed";
  const Ids ids = gpt2().encode(text, false);
  EXPECT_EQ(ids, expected[0]);
  EXPECT_EQ(gpt2().decode(ids), text);
}

TEST(Gpt2, RoundTrip) {
  REQUIRE_GPT2();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt");
  std::vector<std::string> lines = testing::read_lines(data_path("text/austen_pride_and_prejudice.txt"), false, 1500);
  for (const auto& s : testing::tricky_strings()) lines.push_back(s);
  lines.push_back(std::string("bad utf8 \xFF\xFE \xC3 \x80 end", 19));
  lines.push_back(std::string("nul\0byte", 8));
  for (const auto& line : lines) {
    const Ids ids = gpt2().encode(line, true);
    EXPECT_EQ(gpt2().decode(ids), line);
    std::string streamed;
    for (const int32_t id : ids) streamed += gpt2().token_to_piece(id);
    EXPECT_EQ(streamed, line);
  }
}

TEST(Gpt2, TokenToPiece) {
  REQUIRE_GPT2();
  EXPECT_EQ(gpt2().token_to_piece(18435), " Hello");
  EXPECT_EQ(gpt2().token_to_piece(198), "\n");
  EXPECT_EQ(gpt2().token_to_piece(50256), "");
  EXPECT_THROW(gpt2().token_to_piece(50257), Error);
  EXPECT_THROW(gpt2().token_to_piece(-1), Error);
  const Ids bad{15496, 99999};
  EXPECT_THROW(gpt2().decode(bad), Error);
}

TEST(Gpt2, LongInputsStayFast) {
  REQUIRE_GPT2();
  // One 200 KB "word" and 200 KB of spaces: linear-ish, not quadratic.
  const std::string letters(200000, 'a');
  const Ids a = gpt2().encode(letters, false);
  EXPECT_EQ(gpt2().decode(a), letters);
  const std::string spaces(200000, ' ');
  EXPECT_EQ(gpt2().decode(gpt2().encode(spaces, false)), spaces);
}

}  // namespace
}  // namespace qf::tokenizer

namespace qf::tokenizer {
namespace {

// SmolLM2's byte-level vocabulary has no token for a few control bytes: such
// a byte becomes the unknown token when there is one, and is dropped
// otherwise (Hugging Face tokenizers' BPE), instead of refusing the vocabulary.
TEST(Gpt2, BytesWithoutATokenBecomeUnknownOrAreDropped) {
  REQUIRE_GPT2();
  Vocab v = gpt2().vocab();
  const std::string ctrl_a = "\xC4\x81";  // byte 0x01's GPT-2 character, U+0101
  const auto it = std::find(v.tokens.begin(), v.tokens.end(), ctrl_a);
  ASSERT_NE(it, v.tokens.end());
  *it = "<removed 0x01>";
  const auto dropped = make_tokenizer(v);
  // The pre-tokenizer splits "a", "\x01", "b" into words; the middle one vanishes.
  Ids want = gpt2().encode("a", false);
  want.push_back(gpt2().encode("b", false).front());
  EXPECT_EQ(dropped->encode("a\x01" "b", false), want);
  // Printable ASCII must be there.
  Vocab broken = gpt2().vocab();
  *std::find(broken.tokens.begin(), broken.tokens.end(), std::string("A")) = "<removed A>";
  EXPECT_THROW(make_tokenizer(broken), Error);
  v.unk_id = 50256;
  const auto unknown = make_tokenizer(v);
  const Ids ids = unknown->encode("\x01", false);
  EXPECT_EQ(ids, (Ids{50256}));
}

}  // namespace
}  // namespace qf::tokenizer
