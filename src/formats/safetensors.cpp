#include "formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/strict_json.h"
#include "formats/tensor_view.h"

namespace qf::formats {
namespace {

// Tensor data is viewed in place; safetensors is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors reader assumes a little-endian host");

using json = nlohmann::ordered_json;

struct TensorEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

std::string known_dtypes() {
  std::string s;
  for (int i = 0; i <= static_cast<int>(DType::Bool); ++i) {
    if (!s.empty()) s += ", ";
    s += dtype_name(static_cast<DType>(i));
  }
  return s;
}

// A JSON value for an error message: one line, bounded length.
std::string excerpt(const json& value) {
  std::string s = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 120) s = s.substr(0, 120) + "...";
  return s;
}

const json& field(const json& entry, const char* key) {
  const auto it = entry.find(key);
  if (it == entry.end()) fail("missing \"{}\" (expected dtype, shape and data_offsets)", key);
  return *it;
}

// Errors name the tensor through the caller's context.
TensorEntry parse_entry_fields(const json& value, uint64_t data_size) {
  QF_CHECK(value.is_object(), "entry must be an object with dtype, shape and data_offsets, got {}", value.type_name());
  TensorEntry e{{}, DType::U8, {}, 0, 0};

  const json& dtype = field(value, "dtype");
  QF_CHECK(dtype.is_string(), "\"dtype\" must be a string, got {}", dtype.type_name());
  const auto dt = dtype_from_name(dtype.get_ref<const std::string&>());
  if (!dt) fail("unknown dtype {} (expected one of {})", quote(dtype.get_ref<const std::string&>()), known_dtypes());
  e.dtype = *dt;

  const json& shape = field(value, "shape");
  QF_CHECK(shape.is_array(), "\"shape\" must be an array of non-negative integers, got {}", shape.type_name());
  // Element count as bytes, checked at every step so no product can wrap.
  uint64_t nbytes = dtype_size(e.dtype);
  for (size_t i = 0; i < shape.size(); ++i) {
    const auto d = json_to_uint(shape[i]);
    if (!d || *d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("\"shape\" element {} is {}; expected a non-negative integer", i, excerpt(shape[i]));
    e.shape.push_back(static_cast<int64_t>(*d));
    if (*d != 0 && nbytes > std::numeric_limits<uint64_t>::max() / *d)
      fail("shape {} overflows (more bytes than any file can hold)", excerpt(shape));
    nbytes *= *d;
  }

  const json& offsets = field(value, "data_offsets");
  std::optional<uint64_t> b, en;
  if (offsets.is_array() && offsets.size() == 2) {
    b = json_to_uint(offsets[0]);
    en = json_to_uint(offsets[1]);
  }
  if (!b || !en) fail("\"data_offsets\" must be [begin, end] with non-negative integers, got {}", excerpt(offsets));
  e.begin = *b;
  e.end = *en;
  QF_CHECK(e.begin <= e.end, "data_offsets [{}, {}] has begin > end", e.begin, e.end);
  QF_CHECK(e.end <= data_size, "data_offsets end {} is beyond the {}-byte data section (file truncated?)", e.end,
           data_size);
  QF_CHECK(e.end - e.begin == nbytes, "data_offsets [{}, {}] span {} bytes but dtype {} x shape {} needs {} bytes",
           e.begin, e.end, e.end - e.begin, dtype_name(e.dtype), shape_to_string(e.shape), nbytes);
  return e;
}

TensorEntry parse_entry(const std::string& name, const json& value, uint64_t data_size) {
  TensorEntry e = with_context("tensor " + quote(name), [&] { return parse_entry_fields(value, data_size); });
  e.name = name;
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& value) {
  QF_CHECK(value.is_object(), "\"__metadata__\" must be an object mapping strings to strings, got {}",
           value.type_name());
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : value.items()) {
    QF_CHECK(v.is_string(), "\"__metadata__\" must map strings to strings; {} is {}", quote(k), v.type_name());
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

// Sorted by offset, tensors must cover [0, data_size) exactly.
void check_tiling(std::vector<TensorEntry>& entries, uint64_t data_size) {
  std::stable_sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry& e : entries) {
    if (e.begin < cursor)
      fail("tensor {}: data_offsets [{}, {}] overlap tensor {} [{}, {}]", quote(e.name), e.begin, e.end,
           quote(prev->name), prev->begin, prev->end);
    if (e.begin > cursor)
      fail("tensor {}: data_offsets [{}, {}] leave bytes [{}, {}) of the data section unused; "
           "tensors must be contiguous",
           quote(e.name), e.begin, e.end, cursor, e.begin);
    cursor = e.end;
    prev = &e;
  }
  QF_CHECK(cursor == data_size, "data section has {} bytes but its tensors cover only {} (trailing bytes)",
           data_size, cursor);
}

SafetensorsContents parse_safetensors_bytes(std::span<const std::byte> bytes, const std::shared_ptr<const void>& owner) {
  const size_t size = bytes.size();
  QF_CHECK(size >= 8, "file is {} bytes, shorter than the 8-byte safetensors header length", size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  QF_CHECK(n <= kMaxSafetensorsHeader, "header length {} is absurdly large (limit {} bytes); not a safetensors file?",
           n, kMaxSafetensorsHeader);
  QF_CHECK(n <= size - 8, "header length {} goes beyond the end of the {}-byte file (truncated?)", n, size);

  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  const json header = with_context("header", [&] { return parse_strict_json(text); });
  QF_CHECK(header.is_object(), "header must be a JSON object mapping tensor names to entries, got {}",
           header.type_name());

  const uint64_t data_size = size - 8 - n;
  SafetensorsContents out;
  std::vector<TensorEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__")
      out.metadata = parse_metadata(value);
    else
      entries.push_back(parse_entry(key, value, data_size));
  }
  check_tiling(entries, data_size);

  const std::byte* data = bytes.data() + 8 + n;
  out.tensors.reserve(entries.size());
  for (const TensorEntry& e : entries) out.tensors.push_back({e.name, view_or_copy(e.dtype, e.shape, data + e.begin, owner)});
  return out;
}

}  // namespace

SafetensorsContents parse_safetensors(std::span<const std::byte> bytes, const std::string& display_name,
                                      std::shared_ptr<const void> owner) {
  return with_context(display_name, [&] { return parse_safetensors_bytes(bytes, owner); });
}

SafetensorsContents read_safetensors(const std::string& path) {
  const auto file = MappedFile::open(path);
  return parse_safetensors(file->bytes(), path, file);
}

}  // namespace qf::formats
