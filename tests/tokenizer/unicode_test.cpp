// UTF-8 decoding, character classes and GPT-2 pre-tokenization, no data needed.
#include <gtest/gtest.h>

#include "tokenizer/unicode.h"

namespace qf::tokenizer::unicode {
namespace {

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  for (const auto p : gpt2_pretokenize(text)) out.emplace_back(p);
  return out;
}

using Strings = std::vector<std::string>;

TEST(Unicode, DecodesUtf8AndRejectsMalformedBytes) {
  uint32_t cp = 0;
  EXPECT_EQ(decode_utf8("A", 0, cp), 1u);
  EXPECT_EQ(cp, 0x41u);
  EXPECT_EQ(decode_utf8("\xC3\xA9", 0, cp), 2u);
  EXPECT_EQ(cp, 0xE9u);
  EXPECT_EQ(decode_utf8("\xE2\x96\x81", 0, cp), 3u);
  EXPECT_EQ(cp, 0x2581u);
  EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x80", 0, cp), 4u);
  EXPECT_EQ(cp, 0x1F600u);
  for (const std::string bad : {"\x80", "\xC3", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF", "\xE2\x96"}) {
    EXPECT_EQ(decode_utf8(bad, 0, cp), 1u) << bad.size();
    EXPECT_EQ(cp, kInvalid);
  }
  std::string s;
  for (const uint32_t c : {0x41u, 0xE9u, 0x2581u, 0x1F600u}) append_utf8(s, c);
  EXPECT_EQ(s, "A\xC3\xA9\xE2\x96\x81\xF0\x9F\x98\x80");
}

TEST(Unicode, ClassifiesLettersNumbersAndSpaces) {
  EXPECT_EQ(classify('a'), CharClass::Letter);
  EXPECT_EQ(classify('Z'), CharClass::Letter);
  EXPECT_EQ(classify('7'), CharClass::Number);
  EXPECT_EQ(classify(' '), CharClass::Whitespace);
  EXPECT_EQ(classify('\n'), CharClass::Whitespace);
  EXPECT_EQ(classify('_'), CharClass::Other);
  EXPECT_EQ(classify('\''), CharClass::Other);
  EXPECT_EQ(classify(0xE9), CharClass::Letter);    // é
  EXPECT_EQ(classify(0xAA), CharClass::Letter);    // ª (Lo)
  EXPECT_EQ(classify(0xB5), CharClass::Letter);    // µ
  EXPECT_EQ(classify(0xD7), CharClass::Other);     // ×
  EXPECT_EQ(classify(0xB2), CharClass::Number);    // ² (No)
  EXPECT_EQ(classify(0xBD), CharClass::Number);    // ½
  EXPECT_EQ(classify(0xA0), CharClass::Whitespace);
  EXPECT_EQ(classify(0x0416), CharClass::Letter);  // Cyrillic
  EXPECT_EQ(classify(0x03B1), CharClass::Letter);  // Greek
  EXPECT_EQ(classify(0x05D0), CharClass::Letter);  // Hebrew
  EXPECT_EQ(classify(0x0645), CharClass::Letter);  // Arabic
  EXPECT_EQ(classify(0x0966), CharClass::Number);  // Devanagari digit zero
  EXPECT_EQ(classify(0x4E2D), CharClass::Letter);  // CJK
  EXPECT_EQ(classify(0x3042), CharClass::Letter);  // Hiragana
  EXPECT_EQ(classify(0xAC00), CharClass::Letter);  // Hangul
  EXPECT_EQ(classify(0x2162), CharClass::Number);  // Roman numeral three (Nl)
  EXPECT_EQ(classify(0x3000), CharClass::Whitespace);
  EXPECT_EQ(classify(0x1F600), CharClass::Other);  // emoji
  EXPECT_EQ(classify(0x20000), CharClass::Letter);  // CJK extension B
  EXPECT_EQ(classify(kInvalid), CharClass::Other);
}

TEST(Unicode, Gpt2PreTokenization) {
  EXPECT_EQ(split("Hello world"), (Strings{"Hello", " world"}));
  EXPECT_EQ(split("Hello, world!"), (Strings{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split("I'm you're it'll"), (Strings{"I", "'m", " you", "'re", " it", "'ll"}));
  EXPECT_EQ(split("'sa 'S"), (Strings{"'s", "a", " '", "S"}));
  EXPECT_EQ(split("abc123 45"), (Strings{"abc", "123", " 45"}));
  EXPECT_EQ(split("a  b"), (Strings{"a", " ", " b"}));
  EXPECT_EQ(split("a   b"), (Strings{"a", "  ", " b"}));
  EXPECT_EQ(split("a \n b"), (Strings{"a", " \n", " b"}));
  EXPECT_EQ(split("a\nb"), (Strings{"a", "\n", "b"}));
  EXPECT_EQ(split("a\n\nb"), (Strings{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split("end  "), (Strings{"end", "  "}));
  EXPECT_EQ(split(" "), (Strings{" "}));
  EXPECT_EQ(split("!!? ..."), (Strings{"!!?", " ..."}));
  EXPECT_EQ(split("caf\xC3\xA9 \xF0\x9F\x98\x80!"), (Strings{"caf\xC3\xA9", " \xF0\x9F\x98\x80!"}));
  EXPECT_EQ(split(""), Strings{});
  EXPECT_EQ(split("x\xFFy"), (Strings{"x", "\xFF", "y"}));
}

TEST(Unicode, Gpt2ByteCharacters) {
  EXPECT_EQ(byte_to_unicode('A'), 0x41u);
  EXPECT_EQ(byte_to_unicode(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_to_unicode('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_to_unicode(0), 0x100u);
  EXPECT_EQ(byte_to_unicode(0xAD), 0x143u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(unicode_to_byte(byte_to_unicode(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(unicode_to_byte(0x2581), -1);
}

}  // namespace
}  // namespace qf::tokenizer::unicode
