// Malformed and hostile tokenizer files: every loader fails with a qf::Error
// that names the file, and find_tokenizer says what it looked for.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/load.h"
#include "tokenizer/tokenizer.h"

namespace qf::tokenizer {
namespace {

using testing::TempDir;

// Runs fn, expects a qf::Error whose message contains every fragment.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "expected a qf::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

std::string le32(int32_t v) {
  std::string s(4, '\0');
  std::memcpy(s.data(), &v, 4);
  return s;
}
std::string lef32(float v) {
  std::string s(4, '\0');
  std::memcpy(s.data(), &v, 4);
  return s;
}
std::string llama2c_token(float score, const std::string& piece) {
  return lef32(score) + le32(static_cast<int32_t>(piece.size())) + piece;
}
std::string small_llama2c() {
  return le32(6) + llama2c_token(0, "<unk>") + llama2c_token(0, "\n<s>\n") + llama2c_token(0, "\n</s>\n") +
         llama2c_token(0, "<0x0A>") + llama2c_token(-1, " a") + llama2c_token(-2, "b");
}

TEST(Llama2cTokenizer, ReadsASmallFile) {
  TempDir tmp;
  const auto path = tmp.write("tokenizer.bin", small_llama2c());
  const Vocab v = load_llama2c_tokenizer(path);
  ASSERT_EQ(v.tokens.size(), 6u);
  EXPECT_EQ(v.tokens[1], "<s>");
  EXPECT_EQ(v.tokens[2], "</s>");
  EXPECT_EQ(v.tokens[4], "\xE2\x96\x81" "a");
  EXPECT_EQ(v.types[3], TokenType::Byte);
  EXPECT_EQ(v.types[0], TokenType::Unknown);
  EXPECT_EQ(load_llama2c_tokenizer(path, 6).tokens, v.tokens);
  const auto t = make_tokenizer(v);
  EXPECT_EQ(t->encode("a\n", true), (std::vector<int32_t>{1, 4, 3}));
}

TEST(Llama2cTokenizer, RejectsMalformedFiles) {
  TempDir tmp;
  const std::string good = small_llama2c();
  expect_error([&] { load_llama2c_tokenizer(tmp.write("empty.bin", "")); }, {"empty.bin", "truncated"});
  expect_error([&] { load_llama2c_tokenizer(tmp.write("cut.bin", good.substr(0, good.size() - 1))); },
               {"cut.bin", "truncated"});
  expect_error([&] { load_llama2c_tokenizer(tmp.write("cut2.bin", good.substr(0, 10))); }, {"cut2.bin", "truncated"});
  expect_error([&] { load_llama2c_tokenizer(tmp.write("short.bin", good), 7); }, {"short.bin", "expected 7 tokens"});
  expect_error([&] { load_llama2c_tokenizer(tmp.write("long.bin", good), 5); }, {"long.bin", "unexpected"});
  expect_error([&] { load_llama2c_tokenizer(tmp.write("maxlen.bin", le32(-3) + good.substr(4))); },
               {"maxlen.bin", "max_token_length"});
  expect_error([&] { load_llama2c_tokenizer(tmp.write("neg.bin", le32(6) + lef32(0) + le32(-5))); },
               {"neg.bin", "length -5"});
  expect_error([&] { load_llama2c_tokenizer(tmp.write("huge.bin", le32(6) + lef32(0) + le32(1 << 30))); },
               {"huge.bin", "length"});
  expect_error(
      [&] {
        load_llama2c_tokenizer(tmp.write("nan.bin", le32(6) + llama2c_token(std::numeric_limits<float>::quiet_NaN(),
                                                                            "<unk>")));
      },
      {"nan.bin", "non-finite"});
  expect_error([&] { load_llama2c_tokenizer(tmp.write("two.bin", le32(6) + llama2c_token(0, "<unk>"))); },
               {"two.bin", "at least"});
  expect_error([&] { load_llama2c_tokenizer(tmp.file("missing.bin")); }, {"missing.bin"});
}

TEST(Gpt2Loader, RejectsMalformedFiles) {
  TempDir tmp;
  const std::string vocab_bpe = tmp.write("vocab.bpe", "#version: 0.2\na b\n");
  expect_error([&] { load_gpt2_bpe(tmp.write("bad.json", "{\"a\": 0,"), vocab_bpe); }, {"bad.json"});
  expect_error([&] { load_gpt2_bpe(tmp.write("arr.json", "[1,2]"), vocab_bpe); }, {"arr.json", "object"});
  expect_error([&] { load_gpt2_bpe(tmp.write("dup.json", R"({"a": 0, "a": 1})"), vocab_bpe); }, {"dup.json"});
  expect_error([&] { load_gpt2_bpe(tmp.write("neg.json", R"({"a": -1})"), vocab_bpe); }, {"neg.json", "\"a\""});
  expect_error([&] { load_gpt2_bpe(tmp.write("gap.json", R"({"a": 0, "b": 5})"), vocab_bpe); },
               {"gap.json", "ids must be"});
  expect_error([&] { load_gpt2_bpe(tmp.write("same.json", R"({"a": 0, "b": 0})"), vocab_bpe); },
               {"same.json", "share id"});
  expect_error([&] { load_gpt2_bpe(tmp.file("none.json"), vocab_bpe); }, {"none.json"});
}

TEST(Gpt2Loader, RejectsMergesOfUnknownTokens) {
  QF_REQUIRE_SHARED("tokenizers/gpt2/encoder.json");
  TempDir tmp;
  const std::string enc = testing::data_path("tokenizers/gpt2/encoder.json");
  expect_error([&] { load_gpt2_bpe(enc, tmp.write("v1.bpe", "#version: 0.2\nh e\nqq\xC4\xA0 zz\n")); },
               {"v1.bpe", "unknown token"});
  expect_error([&] { load_gpt2_bpe(enc, tmp.write("v2.bpe", "#version: 0.2\nh e\nnot-a-pair\n")); },
               {"v2.bpe", "line 3"});
  expect_error([&] { load_gpt2_bpe(enc, tmp.write("v3.bpe", "#version: 0.2\n")); }, {"v3.bpe", "no merges"});
}

TEST(SentencePieceLoader, RejectsMalformedFiles) {
  TempDir tmp;
  expect_error([&] { load_sentencepiece_model(tmp.write("empty.model", "")); }, {"empty.model"});
  expect_error([&] { load_sentencepiece_model(tmp.write("junk.model", "this is not a protobuf at all")); },
               {"junk.model"});
  expect_error([&] { load_sentencepiece_model(tmp.file("missing.model")); }, {"missing.model"});
}

TEST(SentencePieceLoader, RejectsTruncatedRealModel) {
  QF_REQUIRE_SHARED("stories260K/tok512.model");
  TempDir tmp;
  const std::string model = testing::read_file(testing::data_path("stories260K/tok512.model"));
  for (const size_t cut : {size_t{1}, size_t{100}, model.size() / 2, model.size() - 3}) {
    const auto path = tmp.write("cut" + std::to_string(cut) + ".model", model.substr(0, cut));
    expect_error([&] { load_sentencepiece_model(path); }, {path});
  }
}

// A minimal valid Llama-style tokenizer.json, with `patch` applied to the text.
std::string llama_json(const std::string& vocab, const std::string& merges, const std::string& extra = "") {
  return R"({"version": "1.0", "added_tokens": [{"id": 0, "content": "<unk>", "special": true},)"
         R"( {"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}],)"
         R"( "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},)"
         R"( {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},)"
         R"( "pre_tokenizer": null, "post_processor": null, "decoder": null,)" +
         extra + R"( "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "vocab": )" + vocab +
         R"(, "merges": )" + merges + "}}";
}

TEST(HfJsonLoader, ReadsASmallLlamaStyleFile) {
  TempDir tmp;
  const auto path = tmp.write(
      "tokenizer.json",
      llama_json(R"({"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3, "a": 4, "b": 5, "\u2581a": 6, "ab": 7, "\u2581ab": 8})",
                 R"(["\u2581 a", "a b", "\u2581a b"])"));
  const Vocab v = load_hf_tokenizer_json(path);
  EXPECT_EQ(v.kind, VocabKind::SentencePiece);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.scores[6], 0.0f);
  EXPECT_EQ(v.scores[7], -1.0f);
  EXPECT_EQ(v.scores[8], -2.0f);
  EXPECT_EQ(make_tokenizer(v)->encode("ab", true), (std::vector<int32_t>{1, 8}));
}

TEST(HfJsonLoader, RejectsMalformedFiles) {
  TempDir tmp;
  const std::string vocab = R"({"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "ab": 5})";
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t1.json", "{\"model\": ")); }, {"t1.json"});
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t2.json", "[]")); }, {"t2.json", "object"});
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t3.json", R"({"model": {"type": "Unigram"}})")); },
               {"t3.json", "Unigram"});
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t4.json", llama_json(vocab, R"(["a zz"])"))); },
               {"t4.json", "unknown token", "zz"});
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t5.json", llama_json(vocab, R"(["b a"])"))); },
               {"t5.json", "not in the vocabulary"});
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t6.json", llama_json(vocab, R"(["ab"])"))); },
               {"t6.json", "one space"});
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t7.json", llama_json(vocab, R"([7])"))); },
               {"t7.json", "merge 0"});
  expect_error(
      [&] { load_hf_tokenizer_json(tmp.write("t8.json", llama_json(R"({"<unk>": 0, "<s>": 1, "</s>": 2, "a": 9})", "[]"))); },
      {"t8.json", "contiguous"});
  expect_error(
      [&] { load_hf_tokenizer_json(tmp.write("t9.json", llama_json(R"({"<unk>": 0, "<s>": 1, "</s>": 2, "a": 2})", "[]"))); },
      {"t9.json", "share id"});
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t10.json", llama_json(R"([1, 2])", "[]"))); },
               {"t10.json", "vocab"});
  expect_error(
      [&] {
        load_hf_tokenizer_json(tmp.write(
            "t11.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": null})"));
      },
      {"t11.json", "family"});
  expect_error(
      [&] {
        load_hf_tokenizer_json(tmp.write(
            "t12.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},)"
                        R"( "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\d+"}}})"));
      },
      {"t12.json", "not supported"});
  // Byte-level without all 256 byte characters.
  expect_error(
      [&] {
        load_hf_tokenizer_json(tmp.write(
            "t13.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},)"
                        R"( "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}})"));
      },
      {"t13.json", "byte"});
  // Deep nesting is refused, not recursed into.
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t14.json", std::string(100000, '[') + std::string(100000, ']'))); },
               {"t14.json"});
  expect_error([&] { load_hf_tokenizer_json(tmp.write("t15.json", std::string("{\"model\": \"\xFF\"}"))); },
               {"t15.json"});
}

TEST(FindTokenizer, LooksBesideTheModel) {
  QF_REQUIRE_SHARED("stories260K/tok512.model", "stories260K/stories260K.bin");
  const std::string dir = testing::data_path("stories260K");
  const Vocab from_dir = find_tokenizer(dir);
  const Vocab from_model = find_tokenizer(dir + "/stories260K.bin");
  EXPECT_EQ(from_dir.tokens.size(), 512u);
  EXPECT_EQ(from_model.tokens, from_dir.tokens);
  EXPECT_TRUE(from_dir.remove_extra_whitespaces);  // it is tok512.model, not tok512.bin
  EXPECT_EQ(find_tokenizer(dir + "/tok512.bin").tokens, from_dir.tokens);
}

TEST(FindTokenizer, FindsEachKind) {
  QF_REQUIRE_SHARED("tokenizers/gpt2/encoder.json", "tokenizers/gpt2/vocab.bpe", "tokenizers/llama2/tokenizer.json");
  EXPECT_EQ(find_tokenizer(testing::data_path("tokenizers/gpt2")).kind, VocabKind::ByteLevelBPE);
  EXPECT_EQ(find_tokenizer(testing::data_path("tokenizers/gpt2/encoder.json")).tokens.size(), 50257u);
  // tokenizer.model comes first when both are there.
  const Vocab llama = find_tokenizer(testing::data_path("tokenizers/llama2"));
  EXPECT_EQ(llama.kind, VocabKind::SentencePiece);
  EXPECT_EQ(llama.tokens.size(), 32000u);
  EXPECT_EQ(llama.tokens[15043], "\xE2\x96\x81Hello");
  EXPECT_EQ(find_tokenizer(testing::data_path("tokenizers/llama2/tokenizer.json")).tokens[22557],
            "\xE2\x96\x81Hello");
}

TEST(FindTokenizer, AppendsAddedTokensFromTokenizerJson) {
  QF_REQUIRE_SHARED("stories260K/tok512.model");
  TempDir tmp;
  std::filesystem::copy_file(testing::data_path("stories260K/tok512.model"), tmp.file("tokenizer.model"));
  tmp.write("tokenizer.json", R"({"added_tokens": [{"id": 1, "content": "<s>", "special": true},)"
                              R"( {"id": 513, "content": "<|tool|>", "special": false},)"
                              R"( {"id": 512, "content": "<|im_end|>", "special": true}]})");
  const Vocab v = find_tokenizer(tmp.path());
  ASSERT_EQ(v.tokens.size(), 514u);
  EXPECT_EQ(v.tokens[512], "<|im_end|>");
  EXPECT_EQ(v.types[512], TokenType::Control);
  EXPECT_EQ(v.types[513], TokenType::UserDefined);
  const auto t = make_tokenizer(v);
  const auto ids = t->encode("a<|tool|>b", false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 513), 1);
  EXPECT_EQ(t->decode(ids), "a<|tool|>b");
  tmp.write("tokenizer.json", R"({"added_tokens": [{"id": 600, "content": "<x>", "special": true}]})");
  expect_error([&] { find_tokenizer(tmp.path()); }, {"tokenizer.json", "600"});
}

TEST(FindTokenizer, NamesWhatItLookedFor) {
  TempDir tmp;
  tmp.write("model.safetensors", "x");
  expect_error([&] { find_tokenizer(tmp.path()); }, {tmp.path(), "tokenizer.json", "tokenizer.model", "vocab.bpe",
                                                     "tok*.model", "tokenizer.bin"});
  expect_error([&] { find_tokenizer(tmp.file("model.safetensors")); }, {"tokenizer.json"});
  expect_error([&] { find_tokenizer(tmp.file("nothing-here")); }, {"nothing-here"});
  // A broken tokenizer file is reported by its own name.
  tmp.write("tokenizer.bin", "xy");
  expect_error([&] { find_tokenizer(tmp.path()); }, {"tokenizer.bin", "truncated"});
}

}  // namespace
}  // namespace qf::tokenizer
