// Tokenizers built from small hand-made Vocabs: merge order, user-defined and
// unused pieces, byte fallback, <unk>, whitespace options, bad Vocabs.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <thread>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace qf::tokenizer {
namespace {

using Ids = std::vector<int32_t>;
const std::string kSp = "\xE2\x96\x81";

// <unk> <s> </s>, then the given pieces (Normal unless typed), then optionally 256 byte tokens.
Vocab spm_vocab(const std::vector<std::pair<std::string, float>>& pieces, bool bytes,
                const std::vector<std::pair<std::string, TokenType>>& typed = {}) {
  Vocab v;
  v.kind = VocabKind::SentencePiece;
  const auto add = [&](const std::string& p, float s, TokenType t) {
    v.tokens.push_back(p);
    v.scores.push_back(s);
    v.types.push_back(t);
  };
  add("<unk>", 0, TokenType::Unknown);
  add("<s>", 0, TokenType::Control);
  add("</s>", 0, TokenType::Control);
  for (const auto& [p, s] : pieces) add(p, s, TokenType::Normal);
  for (const auto& [p, t] : typed) add(p, 0, t);
  if (bytes) {
    for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0, TokenType::Byte);
  }
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

TEST(SpmSynthetic, HighestScoreMergesFirst) {
  // "abc": ab (-1) beats bc (-2), then abc needs ab+c.
  auto v = spm_vocab({{"a", -10}, {"b", -10}, {"c", -10}, {"ab", -1}, {"bc", -2}, {"abc", -3}, {kSp, -10}}, false);
  v.add_space_prefix = false;
  auto t = make_tokenizer(v);
  EXPECT_EQ(t->encode("abc", false), (Ids{8}));
  EXPECT_EQ(t->encode("abc", true), (Ids{1, 8}));
  // Any adjacent pair whose concatenation is a piece may merge: bc first, then a+bc.
  auto v2 = spm_vocab({{"a", -10}, {"b", -10}, {"c", -10}, {"ab", -2}, {"bc", -1}, {"abc", -3}}, false);
  v2.add_space_prefix = false;
  EXPECT_EQ(make_tokenizer(v2)->encode("abc", false), (Ids{8}));
  EXPECT_EQ(make_tokenizer(v2)->encode("abcb", false), (Ids{8, 4}));
  auto v4 = spm_vocab({{"a", -10}, {"b", -10}, {"c", -10}, {"ab", -2}, {"bc", -1}}, false);
  v4.add_space_prefix = false;
  EXPECT_EQ(make_tokenizer(v4)->encode("abc", false), (Ids{3, 7}));
  // Ties go to the leftmost pair: "aaa" -> "aa" "a".
  auto v3 = spm_vocab({{"a", -10}, {"aa", -1}}, false);
  v3.add_space_prefix = false;
  EXPECT_EQ(make_tokenizer(v3)->encode("aaa", false), (Ids{4, 3}));
}

TEST(SpmSynthetic, DummyPrefixAndSpaces) {
  auto v = spm_vocab({{kSp, -5}, {"a", -5}, {kSp + "a", -1}, {kSp + kSp, -2}}, false);
  auto t = make_tokenizer(v);
  EXPECT_EQ(t->encode("a", false), (Ids{5}));
  EXPECT_EQ(t->encode(" a", false), (Ids{3, 5}));   // "▁▁a": ▁a wins over ▁▁
  EXPECT_EQ(t->encode("a a", false), (Ids{5, 5}));
  EXPECT_EQ(t->decode(Ids{1, 5, 5}), "a a");
  EXPECT_EQ(t->decode(Ids{1, 3, 5}), " a");
  v.add_space_prefix = false;
  EXPECT_EQ(make_tokenizer(v)->encode("a a", false), (Ids{4, 5}));
  v.add_space_prefix = true;
  v.remove_extra_whitespaces = true;
  auto r = make_tokenizer(v);
  EXPECT_EQ(r->encode("  a   a  ", false), (Ids{5, 5}));
  EXPECT_EQ(r->encode("   ", false), Ids{});
}

TEST(SpmSynthetic, ByteFallbackAndUnknown) {
  auto with_bytes = make_tokenizer(spm_vocab({{"a", -1}}, true));
  // "▁" is no piece: its three bytes; "é" likewise.
  const Ids ids = with_bytes->encode("a\xC3\xA9", false);
  const int32_t b0 = 4;  // first byte token
  EXPECT_EQ(ids, (Ids{b0 + 0xE2, b0 + 0x96, b0 + 0x81, 3, b0 + 0xC3, b0 + 0xA9}));
  // The dummy prefix spelled in byte tokens is dropped too.
  EXPECT_EQ(with_bytes->decode(ids), "a\xC3\xA9");
  EXPECT_EQ(with_bytes->decode(with_bytes->encode("\xE2\x96\x81x", true)), "\xE2\x96\x81x");
  auto no_bytes = make_tokenizer(spm_vocab({{"a", -1}}, false));
  EXPECT_EQ(no_bytes->encode("a\xC3\xA9", false), (Ids{0, 3, 0}));
  EXPECT_EQ(no_bytes->decode(Ids{3, 0}), "a \xE2\x81\x87 ");
  auto v = spm_vocab({{"a", -1}}, false);
  v.unk_id = -1;
  v.types[0] = TokenType::Control;
  EXPECT_THROW(make_tokenizer(v)->encode("b", false), Error);
}

TEST(SpmSynthetic, UserDefinedPiecesMatchVerbatimAndControlNever) {
  auto v = spm_vocab({{"<", -1}, {"x", -1}, {">", -1}, {"<x", -0.5f}, {kSp, -1}},
                     false, {{"<x>", TokenType::UserDefined}, {"<ctl>", TokenType::Control}});
  v.add_space_prefix = false;
  auto t = make_tokenizer(v);
  // "<x>" is user-defined (id 8): matched as a whole even though "<x" would merge first.
  EXPECT_EQ(t->encode("a<x>b", false), (Ids{0, 8, 0}));
  EXPECT_EQ(t->encode("<x><x", false), (Ids{8, 6}));
  EXPECT_EQ(t->token_to_piece(8), "<x>");
  EXPECT_EQ(t->token_to_piece(9), "");
  // Control pieces are never produced from text.
  const Ids ctl = t->encode("<ctl>", false);
  EXPECT_EQ(std::count(ctl.begin(), ctl.end(), 9), 0);
}

TEST(SpmSynthetic, UnusedPiecesAreResegmented) {
  // "ab" merges into unused "ab", which is split back into a + b.
  auto v = spm_vocab({{"a", -5}, {"b", -5}}, false, {{"ab", TokenType::Unused}});
  v.add_space_prefix = false;
  EXPECT_EQ(make_tokenizer(v)->encode("ab", false), (Ids{3, 4}));
}

Vocab bpe_vocab() {
  Vocab v;
  v.kind = VocabKind::ByteLevelBPE;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(s, unicode::byte_to_unicode(static_cast<uint8_t>(b)));
    v.tokens.push_back(s);
  }
  const std::string G = "\xC4\xA0";  // Ġ
  for (const std::string& t : {std::string("ab"), G + "a", G + "ab", std::string("abab")}) v.tokens.push_back(t);
  v.tokens.push_back("<|end|>");
  v.tokens.push_back("<tool>");
  v.types.assign(v.tokens.size(), TokenType::Normal);
  v.types[260] = TokenType::Control;
  v.types[261] = TokenType::UserDefined;
  v.merges = {"a b", G + " a", G + " ab", "ab ab"};
  v.eos_id = 260;
  v.add_space_prefix = false;
  return v;
}

TEST(BpeSynthetic, RankedMerges) {
  auto t = make_tokenizer(bpe_vocab());
  EXPECT_EQ(t->encode("ab", false), (Ids{256}));
  EXPECT_EQ(t->encode("abab", false), (Ids{259}));
  EXPECT_EQ(t->encode("ababa", false), (Ids{259, 'a'}));
  EXPECT_EQ(t->encode("x ab", false), (Ids{'x', 258}));
  EXPECT_EQ(t->encode("x<tool>ab", false), (Ids{'x', 261, 256}));
  EXPECT_EQ(t->decode(Ids{'x', 261, 258, 260}), "x<tool> ab");
  auto v = bpe_vocab();
  v.add_space_prefix = true;
  EXPECT_EQ(make_tokenizer(v)->encode("ab", false), (Ids{258}));
}

TEST(VocabValidation, RejectsBadVocabularies) {
  EXPECT_THROW(make_tokenizer(Vocab{}), Error);
  auto v = spm_vocab({{"a", -1}}, false);
  v.scores.pop_back();
  EXPECT_THROW(make_tokenizer(v), Error);
  v = spm_vocab({{"a", -1}}, false);
  v.bos_id = 99;
  EXPECT_THROW(make_tokenizer(v), Error);
  v = spm_vocab({{"a", -1}}, false);
  v.scores[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(make_tokenizer(v), Error);
  v = spm_vocab({{"a", -1}}, false, {{"<0xZZ>", TokenType::Byte}});
  EXPECT_THROW(make_tokenizer(v), Error);
  v = spm_vocab({{"a", -1}}, false);
  v.types[3] = static_cast<TokenType>(9);
  EXPECT_THROW(make_tokenizer(v), Error);

  auto b = bpe_vocab();
  b.merges.push_back("a zz");
  try {
    make_tokenizer(b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown token"), std::string::npos) << e.what();
  }
  b = bpe_vocab();
  b.merges.push_back("b a");  // "ba" is not a token
  EXPECT_THROW(make_tokenizer(b), Error);
  b = bpe_vocab();
  b.merges.push_back("ab");
  EXPECT_THROW(make_tokenizer(b), Error);
  b = bpe_vocab();
  b.tokens[0x41] = "zz";  // printable byte 'A' has no token
  EXPECT_THROW(make_tokenizer(b), Error);
  b = bpe_vocab();
  b.tokens[10] = "zz";  // a control byte may lack one: it is dropped (no unknown token here)
  // ("a", "\n", "b" are three pre-tokenized words; the middle one vanishes.)
  EXPECT_EQ(make_tokenizer(b)->encode("a\nb", false), (std::vector<int32_t>{'a', 'b'}));
}

TEST(Tokenizer, ConcurrentEncodeIsSafe) {
  auto t = make_tokenizer(bpe_vocab());
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 2000; ++k) {
        const std::string s = "ab x" + std::to_string(k * 4 + i) + " abab";
        if (t->decode(t->encode(s, false)) != s) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace qf::tokenizer
