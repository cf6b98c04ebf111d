// JSON parsing for untrusted checkpoint headers. nlohmann's default parser
// silently keeps one of two duplicate keys, nests without bound and treats a
// NUL byte as the end of input; for files that decide which bytes of a
// checkpoint become which tensor, all of these must be errors instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace qf::formats {

// Deep enough for any checkpoint header (safetensors needs 3), shallow enough
// that hostile input cannot make the DOM expensive to build or destroy.
inline constexpr int kMaxJsonDepth = 64;

// Byte offset of the first byte that is not part of well-formed UTF-8
// (overlong forms, surrogates and code points above U+10FFFF are rejected),
// or nullopt when the whole text is valid.
std::optional<size_t> find_invalid_utf8(std::string_view text);

// Parses `text` as one JSON value (surrounding whitespace allowed), keeping
// object keys in document order. Throws qf::Error (without a file name; wrap
// with qf::with_context) for invalid UTF-8, NUL bytes, syntax errors, nesting
// deeper than `max_depth` and duplicate keys in any object.
nlohmann::ordered_json parse_strict_json(std::string_view text, int max_depth = kMaxJsonDepth);

// Reads the file at `path` and parses it as above; every error starts with `path`.
nlohmann::ordered_json read_strict_json_file(const std::string& path, int max_depth = kMaxJsonDepth);

// The value as a non-negative integer, or nullopt for anything else
// (negative or fractional numbers, strings, ...).
std::optional<uint64_t> json_to_uint(const nlohmann::ordered_json& value);

// `text` as a JSON string literal for error messages: quotes, escapes (so a
// hostile name cannot break the one-line message), invalid UTF-8 replaced,
// and cut after `max_bytes` bytes.
std::string quote(std::string_view text, size_t max_bytes = 120);

}  // namespace qf::formats
