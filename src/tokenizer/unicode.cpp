#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace qf::tokenizer::unicode {
namespace {

struct Range {
  uint32_t first;
  uint32_t last;
  CharClass cls;
};

constexpr CharClass kLetter = CharClass::Letter;
constexpr CharClass kNumber = CharClass::Number;

constexpr Range kRanges[] = {
#include "tokenizer/unicode_tables.inc"
};

}  // namespace

size_t decode_utf8(std::string_view text, size_t pos, uint32_t& cp) {
  const auto b0 = static_cast<uint8_t>(text[pos]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len = 0;
  uint32_t value = 0;
  uint32_t min_value = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, value = b0 & 0x1F, min_value = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, value = b0 & 0x0F, min_value = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, value = b0 & 0x07, min_value = 0x10000;
  } else {
    cp = kInvalid;
    return 1;
  }
  if (pos + len > text.size()) {
    cp = kInvalid;
    return 1;
  }
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<uint8_t>(text[pos + i]);
    if ((b & 0xC0) != 0x80) {
      cp = kInvalid;
      return 1;
    }
    value = (value << 6) | (b & 0x3F);
  }
  if (value < min_value || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
    cp = kInvalid;
    return 1;
  }
  cp = value;
  return len;
}

size_t utf8_char_len(std::string_view text, size_t pos) {
  uint32_t cp = 0;
  return decode_utf8(text, pos, cp);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_whitespace(uint32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

CharClass classify(uint32_t cp) {
  if (cp == kInvalid) return CharClass::Other;
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::Letter;
    if (cp >= '0' && cp <= '9') return CharClass::Number;
    return is_whitespace(cp) ? CharClass::Whitespace : CharClass::Other;
  }
  if (is_whitespace(cp)) return CharClass::Whitespace;
  // Last range whose first code point is <= cp.
  const auto* end = std::end(kRanges);
  const auto* it = std::upper_bound(std::begin(kRanges), end, cp,
                                    [](uint32_t c, const Range& r) { return c < r.first; });
  if (it == std::begin(kRanges)) return CharClass::Other;
  --it;
  return cp <= it->last ? it->cls : CharClass::Other;
}

std::vector<std::string_view> gpt2_pretokenize(std::string_view text) {
  // Decode once: classes and byte offsets of every character.
  std::vector<CharClass> cls;
  std::vector<size_t> off;
  cls.reserve(text.size());
  off.reserve(text.size() + 1);
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp = 0;
    const size_t len = decode_utf8(text, pos, cp);
    off.push_back(pos);
    cls.push_back(classify(cp));
    pos += len;
  }
  off.push_back(text.size());
  const size_t n = cls.size();
  auto byte_at = [&](size_t i) { return text[off[i]]; };
  // Characters [i, end) of the same kind as `want`; "Other" means "not L, N or \s".
  auto run_end = [&](size_t i, CharClass want) {
    while (i < n && cls[i] == want) ++i;
    return i;
  };

  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < n) {
    size_t end = i;
    const char c = byte_at(i);
    if (c == '\'' && i + 1 < n) {
      const char c1 = byte_at(i + 1);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        end = i + 2;
      } else if (i + 2 < n) {
        const char c2 = byte_at(i + 2);
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) end = i + 3;
      }
    }
    if (end == i) {
      // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one kind.
      const size_t start = (c == ' ' && i + 1 < n && cls[i + 1] != CharClass::Whitespace) ? i + 1 : i;
      if (cls[start] != CharClass::Whitespace) {
        end = run_end(start, cls[start]);
      } else {
        // `\s+(?!\S)` then `\s+`: a whitespace run, less its last character when a
        // non-space follows and the run is longer than one.
        const size_t ws_end = run_end(i, CharClass::Whitespace);
        end = (ws_end < n && ws_end - i > 1) ? ws_end - 1 : ws_end;
      }
    }
    out.emplace_back(text.substr(off[i], off[end] - off[i]));
    i = end;
  }
  return out;
}

namespace {

struct ByteTables {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> to_byte{};
  ByteTables() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& byte_tables() {
  static const ByteTables tables;
  return tables;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return byte_tables().to_cp[b]; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? byte_tables().to_byte[cp] : -1; }

}  // namespace qf::tokenizer::unicode
