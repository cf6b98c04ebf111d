#include "formats/strict_json.h"

#include <fstream>
#include <sstream>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

namespace qf::formats {
namespace {

using json = nlohmann::ordered_json;

// Builds the DOM from SAX events so that depth and duplicate keys can be
// checked while parsing; nlohmann's own parser loop is iterative, so a deep
// input is stopped here before anything recurses.
class StrictDomBuilder {
 public:
  explicit StrictDomBuilder(int max_depth) : max_depth_(max_depth) {}

  bool null() { return add(json(nullptr)); }
  bool boolean(bool v) { return add(json(v)); }
  bool number_integer(json::number_integer_t v) { return add(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return add(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t& /*text*/) { return add(json(v)); }
  bool string(json::string_t& v) { return add(json(std::move(v))); }
  bool binary(json::binary_t& /*v*/) { return error("binary values are not JSON"); }

  bool start_object(std::size_t /*elements*/) { return open(json::object()); }
  bool start_array(std::size_t /*elements*/) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& k) {
    Frame& f = stack_.back();
    if (!f.keys.insert(k).second) {
      return error(stack_.size() == 1 ? fmt::format("duplicate key {} in the top-level object", quote(k))
                                      : fmt::format("duplicate key {} in object {}", quote(k), quote(f.name)));
    }
    f.pending_key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    std::string what = ex.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; users need the rest.
    if (const auto tag_end = what.find("] "); what.rfind("[json.exception", 0) == 0 && tag_end != std::string::npos)
      what.erase(0, tag_end + 2);
    // "last read: '...'" can echo a whole multi-megabyte token.
    if (what.size() > 300) what = what.substr(0, 300) + "...";
    return error("invalid JSON: " + what);
  }

  const std::string& error_message() const { return error_; }
  json take_root() { return std::move(root_); }

 private:
  struct Frame {
    json* value;
    std::string name;  // key of this container in its parent, for messages
    std::unordered_set<std::string> keys;
    std::string pending_key;
  };

  bool error(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  // Returns where the value landed so containers can become the new top.
  json* insert(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Frame& f = stack_.back();
    if (f.value->is_array()) {
      f.value->push_back(std::move(v));
      return &f.value->back();
    }
    // Append directly: ordered_map's operator[] searches linearly, which would
    // make a header with many keys quadratic. Duplicates were rejected in key().
    auto& obj = f.value->get_ref<json::object_t&>();
    auto& items = static_cast<std::vector<std::pair<const std::string, json>>&>(obj);
    items.emplace_back(std::move(f.pending_key), std::move(v));
    return &items.back().second;
  }

  bool add(json&& v) {
    insert(std::move(v));
    return true;
  }

  bool open(json&& container) {
    if (static_cast<int>(stack_.size()) >= max_depth_)
      return error(fmt::format("JSON is nested deeper than {} levels", max_depth_));
    std::string name = stack_.empty() ? std::string() : stack_.back().pending_key;
    json* where = insert(std::move(container));
    stack_.push_back(Frame{where, std::move(name), {}, {}});
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  int max_depth_;
  json root_;
  std::vector<Frame> stack_;
  std::string error_;
};

}  // namespace

std::optional<size_t> find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // continuation byte, 0xC0/0xC1 (overlong) or 0xF5+
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    if (overlong || surrogate || cp > 0x10FFFF) return i;
    i += len;
  }
  return std::nullopt;
}

nlohmann::ordered_json parse_strict_json(std::string_view text, int max_depth) {
  if (const auto bad = find_invalid_utf8(text))
    fail("not valid UTF-8: byte 0x{:02X} at offset {}", static_cast<unsigned char>(text[*bad]), *bad);
  // nlohmann reads a NUL byte as the end of input and would ignore what follows.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    fail("invalid JSON: NUL byte at offset {}", nul);
  StrictDomBuilder builder(max_depth);
  const bool ok = json::sax_parse(text.data(), text.data() + text.size(), &builder);
  if (!ok) fail("{}", builder.error_message().empty() ? "invalid JSON" : builder.error_message());
  return builder.take_root();
}

std::string quote(std::string_view text, size_t max_bytes) {
  const bool cut = text.size() > max_bytes;
  const json literal = std::string(cut ? text.substr(0, max_bytes) : text);
  std::string out = literal.dump(-1, ' ', false, json::error_handler_t::replace);
  if (cut) out += "...";
  return out;
}

std::optional<uint64_t> json_to_uint(const nlohmann::ordered_json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) {
    const auto v = value.get<int64_t>();
    if (v >= 0) return static_cast<uint64_t>(v);
  }
  return std::nullopt;
}

json read_strict_json_file(const std::string& path, int max_depth) {
  std::ifstream in(path, std::ios::binary);
  QF_CHECK(in.good(), "{}: cannot open", path);
  std::ostringstream text;
  text << in.rdbuf();
  QF_CHECK(!in.bad(), "{}: read error", path);
  return with_context(path, [&] { return parse_strict_json(text.str(), max_depth); });
}

}  // namespace qf::formats
