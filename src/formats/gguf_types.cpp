// The ggml type table, metadata values and the metadata container.
#include <algorithm>
#include <array>
#include <limits>
#include <type_traits>

#include <fmt/format.h>

#include "formats/gguf.h"
#include "formats/strict_json.h"

namespace qf::formats {
namespace {

// Block sizes and bytes per block as in ggml's type traits (ggml-common.h
// block structs). Only the plain types have a DType; the quantized ones are
// listed so sizes can be validated and a later issue can decode them.
constexpr std::array kGgmlTypes = {
    GgmlTypeInfo{GgmlType::F32, "F32", 1, 4, DType::F32},
    GgmlTypeInfo{GgmlType::F16, "F16", 1, 2, DType::F16},
    GgmlTypeInfo{GgmlType::Q4_0, "Q4_0", 32, 18, std::nullopt},
    GgmlTypeInfo{GgmlType::Q4_1, "Q4_1", 32, 20, std::nullopt},
    GgmlTypeInfo{GgmlType::Q5_0, "Q5_0", 32, 22, std::nullopt},
    GgmlTypeInfo{GgmlType::Q5_1, "Q5_1", 32, 24, std::nullopt},
    GgmlTypeInfo{GgmlType::Q8_0, "Q8_0", 32, 34, std::nullopt},
    GgmlTypeInfo{GgmlType::Q8_1, "Q8_1", 32, 36, std::nullopt},
    GgmlTypeInfo{GgmlType::Q2_K, "Q2_K", 256, 84, std::nullopt},
    GgmlTypeInfo{GgmlType::Q3_K, "Q3_K", 256, 110, std::nullopt},
    GgmlTypeInfo{GgmlType::Q4_K, "Q4_K", 256, 144, std::nullopt},
    GgmlTypeInfo{GgmlType::Q5_K, "Q5_K", 256, 176, std::nullopt},
    GgmlTypeInfo{GgmlType::Q6_K, "Q6_K", 256, 210, std::nullopt},
    GgmlTypeInfo{GgmlType::Q8_K, "Q8_K", 256, 292, std::nullopt},
    GgmlTypeInfo{GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66, std::nullopt},
    GgmlTypeInfo{GgmlType::IQ2_XS, "IQ2_XS", 256, 74, std::nullopt},
    GgmlTypeInfo{GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98, std::nullopt},
    GgmlTypeInfo{GgmlType::IQ1_S, "IQ1_S", 256, 50, std::nullopt},
    GgmlTypeInfo{GgmlType::IQ4_NL, "IQ4_NL", 32, 18, std::nullopt},
    GgmlTypeInfo{GgmlType::IQ3_S, "IQ3_S", 256, 110, std::nullopt},
    GgmlTypeInfo{GgmlType::IQ2_S, "IQ2_S", 256, 82, std::nullopt},
    GgmlTypeInfo{GgmlType::IQ4_XS, "IQ4_XS", 256, 136, std::nullopt},
    GgmlTypeInfo{GgmlType::I8, "I8", 1, 1, DType::I8},
    GgmlTypeInfo{GgmlType::I16, "I16", 1, 2, DType::I16},
    GgmlTypeInfo{GgmlType::I32, "I32", 1, 4, DType::I32},
    GgmlTypeInfo{GgmlType::I64, "I64", 1, 8, DType::I64},
    GgmlTypeInfo{GgmlType::F64, "F64", 1, 8, DType::F64},
    GgmlTypeInfo{GgmlType::IQ1_M, "IQ1_M", 256, 56, std::nullopt},
    GgmlTypeInfo{GgmlType::BF16, "BF16", 1, 2, DType::BF16},
    GgmlTypeInfo{GgmlType::TQ1_0, "TQ1_0", 256, 54, std::nullopt},
    GgmlTypeInfo{GgmlType::TQ2_0, "TQ2_0", 256, 66, std::nullopt},
    GgmlTypeInfo{GgmlType::MXFP4, "MXFP4", 32, 17, std::nullopt},
};

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  while (true) {
    const auto bad = find_invalid_utf8(s);
    if (!bad) {
      out.append(s);
      return out;
    }
    out.append(s.substr(0, *bad));
    out.append("\xEF\xBF\xBD");  // U+FFFD
    s.remove_prefix(*bad + 1);
  }
}

template <typename T>
std::string scalar_to_string(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return sanitize_utf8(v);
  } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
    return std::to_string(static_cast<int>(v));
  } else {
    return fmt::format("{}", v);  // shortest round-trip form for floats
  }
}

}  // namespace

std::span<const GgmlTypeInfo> ggml_types() { return kGgmlTypes; }

const GgmlTypeInfo* find_ggml_type(GgmlType type) {
  for (const auto& t : kGgmlTypes)
    if (t.type == type) return &t;
  return nullptr;
}

std::string ggml_type_name(GgmlType type) {
  if (const auto* t = find_ggml_type(type)) return std::string(t->name);
  return fmt::format("unknown ggml type {}", static_cast<uint32_t>(type));
}

std::optional<GgmlType> ggml_type_from_dtype(DType dtype) {
  for (const auto& t : kGgmlTypes)
    if (t.dtype == dtype) return t.type;
  return std::nullopt;
}

uint64_t ggml_nbytes(GgmlType type, const Shape& shape) {
  const GgmlTypeInfo* info = find_ggml_type(type);
  QF_CHECK(info, "{}", ggml_type_name(type));
  // The element count must fit in int64 even when a zero dimension makes it
  // 0: a zero must not hide an absurd shape.
  uint64_t elements = 1;
  bool empty = false;
  for (const int64_t d : shape) {
    QF_CHECK(d >= 0, "negative dimension in shape {}", shape_to_string(shape));
    if (d == 0) {
      empty = true;
      continue;
    }
    if (elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / static_cast<uint64_t>(d))
      fail("shape {} overflows (more elements than any file can hold)", shape_to_string(shape));
    elements *= static_cast<uint64_t>(d);
  }
  const int64_t row = shape.empty() ? 1 : shape.back();
  QF_CHECK(row % info->block_size == 0, "row length {} of shape {} is not a multiple of the {}-element {} block",
           row, shape_to_string(shape), info->block_size, info->name);
  if (empty) return 0;
  const uint64_t blocks = elements / info->block_size;
  if (blocks > std::numeric_limits<uint64_t>::max() / info->type_size)
    fail("shape {} overflows (more bytes than any file can hold)", shape_to_string(shape));
  return blocks * info->type_size;
}

std::string_view gguf_value_type_name(GgufValueType type) {
  static constexpr std::array<std::string_view, 13> names = {"uint8",  "int8",    "uint16", "int16", "uint32",
                                                             "int32",  "float32", "bool",   "string", "array",
                                                             "uint64", "int64",   "float64"};
  const auto i = static_cast<uint32_t>(type);
  return i < names.size() ? names[i] : std::string_view("unknown");
}

GgufValueType GgufValue::array_type() const {
  const auto* array = std::get_if<GgufArray>(&v_);
  QF_CHECK(array, "value of type {} is not an array", gguf_value_type_name(type()));
  // GgufArray's alternatives follow the value types, skipping Array (9).
  const size_t i = array->index();
  return static_cast<GgufValueType>(i < 9 ? i : i + 1);
}

size_t GgufValue::array_size() const {
  const auto* array = std::get_if<GgufArray>(&v_);
  QF_CHECK(array, "value of type {} is not an array", gguf_value_type_name(type()));
  return std::visit([](const auto& v) { return v.size(); }, *array);
}

std::string GgufValue::to_string(size_t max_elements) const {
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, GgufArray>) {
          return std::visit(
              [&](const auto& elems) {
                std::string s = fmt::format("[{} x {}", elems.size(), gguf_value_type_name(array_type()));
                const size_t shown = std::min(elems.size(), max_elements);
                for (size_t i = 0; i < shown; ++i) {
                  s += i == 0 ? ": " : ", ";
                  using E = typename std::decay_t<decltype(elems)>::value_type;
                  if constexpr (std::is_same_v<E, std::string>)
                    s += quote(elems[i], 60);
                  else
                    s += scalar_to_string(static_cast<E>(elems[i]));
                }
                if (shown < elems.size()) s += ", ...";
                return s + "]";
              },
              v);
        } else {
          return scalar_to_string(v);
        }
      },
      v_);
}

void GgufMetadata::add(std::string key, GgufValue value) {
  QF_CHECK(!index_.contains(key), "duplicate metadata key {}", quote(key));
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(value));
}

void GgufMetadata::set(std::string key, GgufValue value) {
  if (const auto it = index_.find(key); it != index_.end()) {
    entries_[it->second].second = std::move(value);
    return;
  }
  add(std::move(key), std::move(value));
}

bool GgufMetadata::erase(std::string_view key) {
  const auto it = index_.find(std::string(key));
  if (it == index_.end()) return false;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
  return true;
}

const GgufValue* GgufMetadata::find(std::string_view key) const {
  const auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const GgufValue& GgufMetadata::at(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("metadata key {} is missing", quote(key));
  return *v;
}

void GgufMetadata::type_mismatch(std::string_view key, const GgufValue& v, const std::string& expected) {
  const std::string actual = v.is_array()
                                 ? fmt::format("array of {}", gguf_value_type_name(v.array_type()))
                                 : std::string(gguf_value_type_name(v.type()));
  fail("metadata key {} has type {}, expected {}", quote(key), actual, expected);
}

uint64_t GgufMetadata::get_uint(std::string_view key) const {
  const GgufValue& v = at(key);
  return std::visit(
      [&](const auto& x) -> uint64_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_signed_v<T>)
            QF_CHECK(x >= 0, "metadata key {} is {}, expected a non-negative integer", quote(key), x);
          return static_cast<uint64_t>(x);
        } else {
          type_mismatch(key, v, "an unsigned integer");
        }
      },
      v.storage());
}

int64_t GgufMetadata::get_int(std::string_view key) const {
  const GgufValue& v = at(key);
  return std::visit(
      [&](const auto& x) -> int64_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_same_v<T, uint64_t>)
            QF_CHECK(x <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                     "metadata key {} is {}, beyond the int64 range", quote(key), x);
          return static_cast<int64_t>(x);
        } else {
          type_mismatch(key, v, "an integer");
        }
      },
      v.storage());
}

double GgufMetadata::get_float(std::string_view key) const {
  const GgufValue& v = at(key);
  if (const float* f = v.get_if<float>()) return *f;
  if (const double* d = v.get_if<double>()) return *d;
  type_mismatch(key, v, "float32 or float64");
}

}  // namespace qf::formats
