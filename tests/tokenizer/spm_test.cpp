// SentencePiece-style tokenization from a Vocab, checked against
// libsentencepiece itself on real text, for Llama-2 (tokenizer.model and
// tokenizer.json) and stories260K (tok512.model and tok512.bin).
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tokenizer/load.h"
#include "tokenizer/tokenizer.h"

namespace qf::tokenizer {
namespace {

using testing::data_path;
using Ids = std::vector<int32_t>;

#define REQUIRE_LLAMA2() \
  QF_REQUIRE_SHARED("tokenizers/llama2/tokenizer.model", "tokenizers/llama2/tokenizer.json")
#define REQUIRE_TOK512() \
  QF_REQUIRE_SHARED("stories260K/tok512.model", "stories260K/tok512.bin", "stories260K/tinystories_valid_sample_30KB.txt")

const Tokenizer& llama2_model() {
  static const auto tok = make_tokenizer(load_sentencepiece_model(data_path("tokenizers/llama2/tokenizer.model")));
  return *tok;
}
const Tokenizer& llama2_json() {
  static const auto tok = make_tokenizer(load_hf_tokenizer_json(data_path("tokenizers/llama2/tokenizer.json")));
  return *tok;
}
const Tokenizer& tok512_model() {
  static const auto tok = make_tokenizer(load_sentencepiece_model(data_path("stories260K/tok512.model")));
  return *tok;
}
const Tokenizer& tok512_bin() {
  static const auto tok = make_tokenizer(load_llama2c_tokenizer(data_path("stories260K/tok512.bin"), 512));
  return *tok;
}

const sentencepiece::SentencePieceProcessor& spm(const std::string& rel) {
  static std::map<std::string, std::unique_ptr<sentencepiece::SentencePieceProcessor>> cache;
  auto& p = cache[rel];
  if (!p) {
    p = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = p->Load(data_path(rel));
    EXPECT_TRUE(status.ok()) << status.ToString();
  }
  return *p;
}

Ids spm_encode(const sentencepiece::SentencePieceProcessor& sp, const std::string& text) {
  std::vector<int> ids;
  const auto status = sp.Encode(text, &ids);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return Ids(ids.begin(), ids.end());
}

std::string spm_decode(const sentencepiece::SentencePieceProcessor& sp, const Ids& ids) {
  std::string text;
  const auto status = sp.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return text;
}

// (operator+ chains on std::string trip a false -Wrestrict in GCC 12.)
std::string concat(std::initializer_list<std::string> parts) {
  std::string out;
  for (const auto& p : parts) out.append(p);
  return out;
}

std::vector<std::string> austen_lines(size_t n) {
  return testing::read_lines(data_path("text/austen_pride_and_prejudice.txt"), true, n, 300);
}

std::vector<std::string> tinystories_lines() {
  return testing::read_lines(data_path("stories260K/tinystories_valid_sample_30KB.txt"), true);
}

// Whole paragraphs (with newlines) as single texts.
std::vector<std::string> austen_chunks() {
  const std::string text = testing::read_file(data_path("text/austen_pride_and_prejudice.txt"));
  std::vector<std::string> out;
  for (size_t off = 30000; off < 30000 + 20 * 997; off += 997) out.push_back(text.substr(off, 900));
  return out;
}

TEST(Llama2, VocabularyFromModel) {
  REQUIRE_LLAMA2();
  const Vocab& v = llama2_model().vocab();
  EXPECT_EQ(v.kind, VocabKind::SentencePiece);
  EXPECT_EQ(llama2_model().vocab_size(), 32000);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_EQ(v.pad_id, -1);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_FALSE(v.remove_extra_whitespaces);
  EXPECT_EQ(v.types[0], TokenType::Unknown);
  EXPECT_EQ(v.types[1], TokenType::Control);
  EXPECT_EQ(v.types[3], TokenType::Byte);
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.types[1000], TokenType::Normal);
}

TEST(Llama2, KnownIds) {
  REQUIRE_LLAMA2();
  EXPECT_EQ(llama2_model().encode("Hello world", true), (Ids{1, 15043, 3186}));
  // The shared tokenizer.json holds a different 32,000-piece vocabulary from
  // tokenizer.model (its ids match Mistral-7B's: "▁Hello" = 22557), see HfJson below.
  EXPECT_EQ(llama2_json().encode("Hello world", true), (Ids{1, 22557, 1526}));
  EXPECT_EQ(llama2_model().encode("", true), (Ids{1}));
  EXPECT_EQ(llama2_model().encode("", false), Ids{});
  EXPECT_EQ(llama2_model().decode(Ids{1, 15043, 3186}), "Hello world");
  EXPECT_EQ(llama2_model().token_to_piece(15043), " Hello");
  EXPECT_EQ(llama2_model().token_to_piece(1), "");
  EXPECT_EQ(llama2_model().token_to_piece(13), "\n");  // <0x0A>
}

void expect_agree(const Tokenizer& ours, const sentencepiece::SentencePieceProcessor& sp,
                  const std::vector<std::string>& texts, const char* what) {
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(ours.encode(texts[i], false), spm_encode(sp, texts[i]))
        << what << " text " << i << ": " << nlohmann::json(texts[i]).dump();
  }
}

TEST(Llama2, ModelAgreesWithLibsentencepiece) {
  REQUIRE_LLAMA2();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt", "stories260K/tinystories_valid_sample_30KB.txt");
  const auto& sp = spm("tokenizers/llama2/tokenizer.model");
  expect_agree(llama2_model(), sp, austen_lines(300), "austen");
  expect_agree(llama2_model(), sp, austen_chunks(), "austen chunk");
  expect_agree(llama2_model(), sp, tinystories_lines(), "tinystories");
  expect_agree(llama2_model(), sp, testing::tricky_strings(), "tricky");
}

// Runs a Python oracle script from this folder on `texts`; empty when it cannot run.
std::vector<Ids> python_reference(const std::string& script, const std::vector<std::string>& args,
                                  const std::vector<std::string>& texts, const testing::TempDir& tmp) {
  std::string input;
  for (const auto& t : texts) input += nlohmann::json(t).dump() + "\n";
  const std::string in = tmp.write("in.jsonl", input);
  const std::string out = tmp.file("out.jsonl");
  std::string cmd = "python3 '" + std::string(QF_SOURCE_DIR) + "/tests/tokenizer/" + script + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " < '" + in + "' > '" + out + "'";
  std::vector<Ids> result;
  if (std::system(cmd.c_str()) != 0) return result;
  std::istringstream s(testing::read_file(out));
  for (std::string line; std::getline(s, line);) result.push_back(nlohmann::json::parse(line).get<Ids>());
  return result;
}

std::vector<std::string> corpus() {
  std::vector<std::string> texts = austen_lines(300);
  for (auto& s : austen_chunks()) texts.push_back(s);
  for (auto& s : tinystories_lines()) texts.push_back(s);
  for (auto& s : testing::tricky_strings()) texts.push_back(s);
  for (size_t n = 1; n <= 20; ++n) texts.push_back(concat({"x", std::string(n, ' '), "y", std::string(n, '\n')}));
  return texts;
}

// Our SentencePiece-style encoding of the shared tokenizer.json (scores =
// -merge rank) equals plain ranked-merge BPE as Hugging Face defines it.
TEST(HfJson, AgreesWithPythonReference) {
  REQUIRE_LLAMA2();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt", "stories260K/tinystories_valid_sample_30KB.txt");
  if (testing::run_command("command -v python3").empty()) GTEST_SKIP() << "python3 is not installed";
  const Vocab& v = llama2_json().vocab();
  EXPECT_EQ(v.kind, VocabKind::SentencePiece);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.types[0], TokenType::Unknown);
  EXPECT_EQ(v.types[1], TokenType::Control);
  EXPECT_EQ(v.types[3], TokenType::Byte);
  const auto texts = corpus();
  testing::TempDir tmp;
  const auto expected =
      python_reference("hf_bpe_reference.py", {data_path("tokenizers/llama2/tokenizer.json")}, texts, tmp);
  ASSERT_EQ(expected.size(), texts.size()) << "the Python reference failed";
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(llama2_json().encode(texts[i], false), expected[i])
        << "text " << i << ": " << nlohmann::json(texts[i]).dump();
    const bool literal_space_symbol = texts[i].find("\xE2\x96\x81") != std::string::npos;
    if (!literal_space_symbol) {
      EXPECT_EQ(llama2_json().decode(llama2_json().encode(texts[i], true)), texts[i]);
    }
  }
}

// Writes the Llama-2 tokenizer.model vocabulary as a Hugging Face
// tokenizer.json the way HF's converter does (every split of a piece into two
// pieces is a merge, ordered by the merged piece's score), loads it back
// through load_hf_tokenizer_json and checks it tokenizes exactly like
// libsentencepiece.
TEST(HfJson, ConvertedLlama2ModelAgreesWithLibsentencepiece) {
  REQUIRE_LLAMA2();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt", "stories260K/tinystories_valid_sample_30KB.txt");
  const Vocab& m = llama2_model().vocab();
  // Key order does not matter to a tokenizer.json reader; ordered_json's
  // linear key lookup made the 32k-entry vocab quadratic.
  using Json = nlohmann::json;
  Json j;
  j["version"] = "1.0";
  j["added_tokens"] = Json::array();
  Json vocab = Json::object();
  std::map<std::string, int32_t> ids;
  for (size_t i = 0; i < m.tokens.size(); ++i) {
    vocab[m.tokens[i]] = i;
    ids[m.tokens[i]] = static_cast<int32_t>(i);
    if (m.types[i] == TokenType::Control || m.types[i] == TokenType::Unknown) {
      j["added_tokens"].push_back({{"id", i}, {"content", m.tokens[i]}, {"special", true}});
    }
  }
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  std::vector<std::pair<int32_t, std::string>> order;  // merged piece id, "left right"
  for (size_t i = 0; i < m.tokens.size(); ++i) {
    if (m.types[i] != TokenType::Normal) continue;
    const std::string& piece = m.tokens[i];
    for (size_t k = 1; k < piece.size(); ++k) {
      if ((static_cast<uint8_t>(piece[k]) & 0xC0) == 0x80) continue;  // inside a character
      const auto l = ids.find(piece.substr(0, k));
      const auto r = ids.find(piece.substr(k));
      if (l == ids.end() || r == ids.end()) continue;
      if (m.types[l->second] != TokenType::Normal || m.types[r->second] != TokenType::Normal) continue;
      order.emplace_back(static_cast<int32_t>(i), piece.substr(0, k) + " " + piece.substr(k));
    }
  }
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return m.scores[a.first] > m.scores[b.first] || (m.scores[a.first] == m.scores[b.first] && a.first < b.first);
  });
  Json merges = Json::array();
  for (const auto& [id, merge] : order) merges.push_back(merge);
  j["model"] = {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true},
                {"vocab", vocab}, {"merges", merges}};
  testing::TempDir tmp;
  const auto path = tmp.write("tokenizer.json", j.dump());
  const auto converted = make_tokenizer(load_hf_tokenizer_json(path));
  EXPECT_EQ(converted->vocab().tokens, m.tokens);
  EXPECT_EQ(converted->vocab().types, m.types);
  EXPECT_EQ(converted->vocab().bos_id, 1);
  const auto& sp = spm("tokenizers/llama2/tokenizer.model");
  auto texts = corpus();
  for (size_t n = 21; n <= 40; ++n) texts.push_back(concat({"x", std::string(n, ' '), "y"}));
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(converted->encode(texts[i], false), spm_encode(sp, texts[i]))
        << "text " << i << ": " << nlohmann::json(texts[i]).dump();
  }
}

TEST(Llama2, WholeNovelAsOneTextAgreesWithLibsentencepiece) {
  REQUIRE_LLAMA2();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt");
  const std::string text = testing::read_file(data_path("text/austen_pride_and_prejudice.txt"));
  const Ids ids = llama2_model().encode(text, true);
  Ids expected{1};
  const Ids lib = spm_encode(spm("tokenizers/llama2/tokenizer.model"), text);
  expected.insert(expected.end(), lib.begin(), lib.end());
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(llama2_model().decode(ids), text);
}

TEST(Llama2, ManySpacesAgreeWithLibsentencepiece) {
  REQUIRE_LLAMA2();
  const auto& sp = spm("tokenizers/llama2/tokenizer.model");
  std::vector<std::string> texts;
  for (size_t n = 1; n <= 40; ++n) {
    texts.push_back(std::string(n, ' '));
    texts.push_back(concat({"a", std::string(n, ' '), "b"}));
    texts.push_back(concat({std::string(n, '\n'), std::string(n, '\t'), "c"}));
  }
  expect_agree(llama2_model(), sp, texts, "spaces");
}

TEST(Llama2, DecodeAgreesWithLibsentencepieceAndRoundTrips) {
  REQUIRE_LLAMA2();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt");
  const auto& sp = spm("tokenizers/llama2/tokenizer.model");
  std::vector<std::string> texts = testing::read_lines(data_path("text/austen_pride_and_prejudice.txt"), false, 1500);
  for (auto& s : testing::tricky_strings()) texts.push_back(s);
  for (const auto& text : texts) {
    const Ids ids = llama2_model().encode(text, true);
    const std::string decoded = llama2_model().decode(ids);
    EXPECT_EQ(decoded, spm_decode(sp, ids)) << nlohmann::json(text).dump();
    // A literal U+2581 in the input decodes as a space, as in SentencePiece.
    if (text.find("\xE2\x96\x81") != std::string::npos) continue;
    EXPECT_EQ(decoded, text);
    EXPECT_EQ(llama2_json().decode(llama2_json().encode(text, true)), text);
  }
  // Bytes that are not UTF-8 survive through byte fallback (libsentencepiece
  // would turn them into U+FFFD).
  const std::string bad("x\xFF\xC3(\x80y", 6);
  EXPECT_EQ(llama2_model().decode(llama2_model().encode(bad, true)), bad);
}

TEST(Llama2, ByteFallbackForUnseenCharacters) {
  REQUIRE_LLAMA2();
  // U+1F600 is not a Llama-2 piece: four byte tokens <0xF0> <0x9F> <0x98> <0x80>.
  const Ids ids = llama2_model().encode("\xF0\x9F\x98\x80", false);
  const auto& sp = spm("tokenizers/llama2/tokenizer.model");
  EXPECT_EQ(ids, spm_encode(sp, "\xF0\x9F\x98\x80"));
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[ids.size() - 4], 0xF0 + 3);
  EXPECT_EQ(ids.back(), 0x80 + 3);
  // Streaming the pieces gives the raw bytes back.
  std::string streamed;
  for (const int32_t id : ids) streamed += llama2_model().token_to_piece(id);
  EXPECT_EQ(streamed, " \xF0\x9F\x98\x80");
}

TEST(Stories260K, BinAndModelGiveTheSameVocabulary) {
  REQUIRE_TOK512();
  const Vocab& m = tok512_model().vocab();
  const Vocab& b = tok512_bin().vocab();
  ASSERT_EQ(m.tokens.size(), 512u);
  EXPECT_EQ(b.tokens, m.tokens);
  EXPECT_EQ(b.scores, m.scores);
  EXPECT_EQ(b.types, m.types);
  EXPECT_EQ(b.bos_id, m.bos_id);
  EXPECT_EQ(b.eos_id, m.eos_id);
  EXPECT_EQ(b.unk_id, m.unk_id);
  EXPECT_EQ(m.bos_id, 1);
  EXPECT_EQ(m.eos_id, 2);
  EXPECT_TRUE(m.add_space_prefix);
  // tok512.model keeps SentencePiece's default normalizer option; llama2.c's
  // .bin format has no place for it.
  EXPECT_TRUE(m.remove_extra_whitespaces);
  EXPECT_FALSE(b.remove_extra_whitespaces);
}

TEST(Stories260K, AgreesWithLibsentencepieceOnTinyStories) {
  REQUIRE_TOK512();
  const auto& sp = spm("stories260K/tok512.model");
  const auto lines = tinystories_lines();
  ASSERT_EQ(lines.size(), 19u);
  size_t total = 0;
  for (const auto& line : lines) {
    const Ids from_model = tok512_model().encode(line, true);
    const Ids from_bin = tok512_bin().encode(line, true);
    Ids expected{1};
    const Ids lib = spm_encode(sp, line);
    expected.insert(expected.end(), lib.begin(), lib.end());
    EXPECT_EQ(from_model, expected);
    EXPECT_EQ(from_bin, expected);
    EXPECT_EQ(tok512_model().decode(from_model), line);
    total += from_model.size();
  }
  // Each non-empty line with BOS and the dummy prefix (the data README says
  // "about 9,100"; libsentencepiece itself gives this count, line by line).
  EXPECT_EQ(total, 15544u);
  std::cout << "[ info ] tinystories_valid_sample_30KB.txt: " << total << " tokens with BOS per line\n";
}

TEST(Stories260K, AgreesWithLibsentencepieceOnOtherText) {
  REQUIRE_TOK512();
  QF_REQUIRE_SHARED("text/austen_pride_and_prejudice.txt");
  const auto& sp = spm("stories260K/tok512.model");
  // tok512.model removes extra whitespace as libsentencepiece does.
  expect_agree(tok512_model(), sp, austen_lines(300), "austen");
  expect_agree(tok512_model(), sp, austen_chunks(), "austen chunk");
  expect_agree(tok512_model(), sp, testing::tricky_strings(), "tricky");
  for (const auto& text : testing::tricky_strings()) {
    const Ids ids = tok512_model().encode(text, true);
    EXPECT_EQ(tok512_model().decode(ids), spm_decode(sp, ids)) << nlohmann::json(text).dump();
  }
}

}  // namespace
}  // namespace qf::tokenizer
