// The GGUF checkpoint format of ggml / llama.cpp, version 3 (version 2 is
// read too: it has the same layout). Spec: ggml-org/ggml docs/gguf.md.
//
// Layout, all little-endian:
//   "GGUF" magic, uint32 version, uint64 tensor_count, uint64 metadata_kv_count;
//   metadata_kv_count x { string key, uint32 value_type, value };
//   tensor_count x { string name, uint32 n_dims, uint64 dims[n_dims],
//                    uint32 ggml_type, uint64 offset };
//   zero padding to a multiple of the alignment (`general.alignment`, a
//   uint32, default 32); the data section. A string is a uint64 byte count and
//   the bytes (no terminator); an array is a uint32 element type, a uint64
//   element count and the elements.
//
// Tensor dims are in ggml order: dims[0] is the fastest-varying (the row
// length), so a row-major [rows, cols] matrix is stored as dims {cols, rows}.
// This API speaks row-major shapes (Shape, as everywhere in QuantForge) and
// exposes the stored ggml dims only in GgufTensorInfo::ggml_dims.
// Offsets are relative to the data section and multiples of the alignment.
//
// The reader is strict: anything that could make a consumer read out of
// bounds or guess (truncation, absurd counts, duplicate names or keys, unknown
// value types, misaligned or overlapping tensor data, nested arrays, bool
// bytes other than 0/1, a big-endian file) is a qf::Error naming the file and
// the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "formats/named_tensor.h"

namespace qf::formats {

inline constexpr uint32_t kGgufVersion = 3;            // what the writer produces
inline constexpr uint32_t kGgufDefaultAlignment = 32;  // when general.alignment is absent
inline constexpr int kGgufMaxDims = 4;                 // GGML_MAX_DIMS
inline constexpr size_t kGgufMaxTensorName = 63;       // llama.cpp's GGML_MAX_NAME (64) less the NUL
inline constexpr std::string_view kGgufAlignmentKey = "general.alignment";

// ---------------------------------------------------------------------------
// ggml tensor types

// Ids as in ggml.h / the spec's `enum ggml_type`. Ids 4, 5, 31-33 and 36-38
// were removed from GGUF and are rejected like any unknown id.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // "F32", "Q4_K", ... as ggml spells them
  uint32_t block_size;    // elements per block (1 for plain element types)
  uint32_t type_size;     // bytes per block
  // The Tensor dtype holding this type element for element, for the plain
  // types (F32, F16, BF16, F64, I8..I64). Block (quantized) types have none:
  // the reader hands out the ten with a codec (formats/gguf_quants.h)
  // dequantized to F32 and reports the others as "not supported yet"; it
  // validates the sizes and offsets of all and can hand out their raw bytes.
  std::optional<DType> dtype;
};

// Every known type, in id order.
std::span<const GgmlTypeInfo> ggml_types();
// Null for an unknown (or removed) id.
const GgmlTypeInfo* find_ggml_type(GgmlType type);
// "Q4_K", or "unknown ggml type 77".
std::string ggml_type_name(GgmlType type);
// The plain ggml type storing `dtype`, if any (F32, F16, BF16, F64, I8..I64).
std::optional<GgmlType> ggml_type_from_dtype(DType dtype);
// Bytes of a tensor of this type with a row-major `shape`. Throws qf::Error
// for an unknown type, a row length that is not a multiple of the block size
// or a size beyond 64 bits.
uint64_t ggml_nbytes(GgmlType type, const Shape& shape);

// ---------------------------------------------------------------------------
// Metadata values

// Ids as in the spec's `enum gguf_metadata_value_type`.
enum class GgufValueType : uint32_t {
  UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
  String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
};
// "uint8", "int32", "float32", "bool", "string", "array", ...
std::string_view gguf_value_type_name(GgufValueType type);

// An array's elements, one vector type per element type, so the element type
// survives even for an empty array. Nested arrays (allowed by the spec, used
// by nobody, rejected by llama.cpp) are not supported.
using GgufArray = std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>,
                               std::vector<int16_t>, std::vector<uint32_t>, std::vector<int32_t>,
                               std::vector<float>, std::vector<bool>, std::vector<std::string>,
                               std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>>;

namespace detail {
template <typename T, typename V>
struct is_alternative : std::false_type {};
template <typename T, typename... Ts>
struct is_alternative<T, std::variant<Ts...>> : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};
template <typename T, typename V>
inline constexpr bool is_alternative_v = is_alternative<T, V>::value;
}  // namespace detail

// One metadata value with its GGUF type. Construct from the C++ type that
// matches the wanted GGUF type exactly: GgufValue(uint32_t{2}) is a uint32,
// GgufValue(2) an int32, GgufValue(1e-5f) a float32, GgufValue("x") a string,
// GgufValue(std::vector<float>{...}) an array of float32.
class GgufValue {
 public:
  // Alternative index == GgufValueType id.
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                               GgufArray, uint64_t, int64_t, double>;

  GgufValue() = default;  // uint8 0
  GgufValue(uint8_t v) : v_(v) {}
  GgufValue(int8_t v) : v_(v) {}
  GgufValue(uint16_t v) : v_(v) {}
  GgufValue(int16_t v) : v_(v) {}
  GgufValue(uint32_t v) : v_(v) {}
  GgufValue(int32_t v) : v_(v) {}
  GgufValue(float v) : v_(v) {}
  GgufValue(bool v) : v_(v) {}
  GgufValue(std::string v) : v_(std::move(v)) {}
  GgufValue(std::string_view v) : v_(std::string(v)) {}
  GgufValue(const char* v) : v_(std::string(v)) {}
  GgufValue(GgufArray v) : v_(std::move(v)) {}
  GgufValue(uint64_t v) : v_(v) {}
  GgufValue(int64_t v) : v_(v) {}
  GgufValue(double v) : v_(v) {}
  template <typename T>
  GgufValue(std::vector<T> v) : v_(GgufArray(std::in_place_type<std::vector<T>>, std::move(v))) {}

  GgufValueType type() const { return static_cast<GgufValueType>(v_.index()); }
  bool is_array() const { return type() == GgufValueType::Array; }
  // Element type and count of an array; throws qf::Error for a scalar.
  GgufValueType array_type() const;
  size_t array_size() const;
  const Storage& storage() const { return v_; }

  // The value when it has exactly type T (a scalar type, std::string or
  // std::vector<element>), else null.
  template <typename T>
  const T* get_if() const {
    if constexpr (detail::is_alternative_v<T, Storage>) {
      return std::get_if<T>(&v_);
    } else {
      static_assert(detail::is_alternative_v<T, GgufArray>, "not a GGUF value type");
      const auto* array = std::get_if<GgufArray>(&v_);
      return array ? std::get_if<T>(array) : nullptr;
    }
  }

  // One line for display: numbers and bools as text, strings as they are
  // (invalid UTF-8 replaced), arrays as "[N x type: e0, e1, ...]" with at
  // most `max_elements` elements shown (strings quoted).
  std::string to_string(size_t max_elements = 8) const;

  bool operator==(const GgufValue& other) const = default;

 private:
  Storage v_;
};

// Key-value metadata in file (insertion) order with unique keys.
class GgufMetadata {
 public:
  using Entry = std::pair<std::string, GgufValue>;

  // Appends; a key already present is a qf::Error.
  void add(std::string key, GgufValue value);
  // Replaces the value of an existing key in place, else appends.
  void set(std::string key, GgufValue value);
  bool erase(std::string_view key);

  const GgufValue* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  // Throws qf::Error "metadata key \"k\" is missing".
  const GgufValue& at(std::string_view key) const;

  // Exact-type access: T is the value's C++ type (uint32_t, float, bool,
  // std::string, std::vector<std::string>, ...). A missing key or another
  // type is a qf::Error naming the key and both types.
  template <typename T>
  const T& get(std::string_view key) const {
    const GgufValue& v = at(key);
    if (const T* p = v.get_if<T>()) return *p;
    type_mismatch(key, v, describe_type<T>());
  }
  // Like get(), but nullopt when the key is absent (a wrong type still throws).
  template <typename T>
  std::optional<T> get_optional(std::string_view key) const {
    if (!contains(key)) return std::nullopt;
    return get<T>(key);
  }

  // Lenient numeric access, as the spec recommends for counts that some
  // writers store as uint32 and others as uint64: any integer type whose
  // value is in range / any float type. Missing key, other types, negative
  // or out-of-range values are qf::Errors naming the key.
  uint64_t get_uint(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  const std::vector<Entry>& entries() const { return entries_; }

  bool operator==(const GgufMetadata& other) const { return entries_ == other.entries_; }

 private:
  template <typename T>
  static std::string describe_type() {
    const GgufValue probe{T{}};
    if (probe.is_array()) return fmt::format("array of {}", gguf_value_type_name(probe.array_type()));
    return std::string(gguf_value_type_name(probe.type()));
  }
  [[noreturn]] static void type_mismatch(std::string_view key, const GgufValue& v, const std::string& expected);

  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// ---------------------------------------------------------------------------
// Reading

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> ggml_dims;  // as stored: ggml_dims[0] is the row length
  Shape shape;                      // row-major: ggml_dims reversed
  uint64_t offset = 0;              // from the start of the data section
  uint64_t nbytes = 0;
};

struct GgufContents {
  std::string display_name;  // the file, for error messages
  uint32_t version = kGgufVersion;
  uint64_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset = 0;  // file offset of the data section
  GgufMetadata metadata;
  std::vector<GgufTensorInfo> tensors;  // in tensor-info (file) order

  const GgufTensorInfo* find(std::string_view name) const;
  // The stored bytes of a tensor of any type (validated to lie in the file).
  std::span<const std::byte> tensor_bytes(const GgufTensorInfo& info) const;
  // A plain-typed tensor as a row-major Tensor: a zero-copy view keeping the
  // file alive (a copy only if the bytes are misaligned for the element
  // type, possible with a tiny general.alignment or an unaligned buffer).
  // Q4_0..Q8_0 and Q2_K..Q6_K tensors: an owning F32 tensor, dequantized.
  // Other block types are a qf::Error "... is IQ2_XS, which is not supported yet".
  Tensor tensor(const GgufTensorInfo& info) const;
  // tensor() of every tensor, in file order.
  std::vector<NamedTensor> named_tensors() const;

  // What the views point into (set by the parser).
  std::span<const std::byte> file_bytes;
  std::shared_ptr<const void> owner;
};

// Parses a complete GGUF file held in memory. Tensors later taken from the
// result view `bytes`, keeping `owner` alive (owner may be null when the
// caller guarantees the lifetime). Throws qf::Error starting with
// `display_name` for any malformed input.
GgufContents parse_gguf(std::span<const std::byte> bytes, const std::string& display_name,
                        std::shared_ptr<const void> owner = nullptr);

// Memory-maps `path` and parses it.
GgufContents read_gguf(const std::string& path);

// Whether `bytes` start with the GGUF magic (for telling formats apart).
bool looks_like_gguf(std::span<const std::byte> bytes);

// ---------------------------------------------------------------------------
// Writing

// The planned content of one tensor, known before its bytes exist.
struct GgufTensorSpec {
  std::string name;
  GgmlType type = GgmlType::F32;
  Shape shape;  // row-major
};

// Writes a GGUF v3 file tensor by tensor: metadata in insertion order, the
// tensor infos of the plan, padding, then each tensor's data padded to the
// alignment (general.alignment from `metadata` when present: a uint32 power
// of two; 32 otherwise). Data goes to a temporary file renamed into place by
// finish(); destroying the writer earlier (an exception) removes it and
// leaves any existing target untouched. Tensor names must be unique and at
// most 63 bytes (llama.cpp's limit), shapes at most 4-D.
class GgufWriter {
 public:
  GgufWriter(std::string path, const GgufMetadata& metadata, std::vector<GgufTensorSpec> plan);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // The next planned tensor, whose name and shape must match the plan. Its
  // dtype must be the planned type's, except that F32, F16 and BF16 convert
  // into each other (through fp32, rounding to nearest even).
  void write(const std::string& name, const Tensor& tensor);
  // The next planned tensor as raw stored bytes, exactly ggml_nbytes() of
  // them; for block types, whose blocks the caller has encoded.
  void write_raw(const std::string& name, std::span<const std::byte> bytes);
  // Checks every planned tensor was written, then commits the file.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whole-file convenience: every tensor stored in its own dtype (which must
// have a ggml type), in the given order.
void write_gguf(const std::string& path, const GgufMetadata& metadata, std::span<const NamedTensor> tensors);

// Everything before the data section (header, metadata, tensor infos,
// padding), exactly as the writer produces it; exposed for tests and tools
// that predict the layout. Also validates the plan. `offsets`, when given,
// receives each tensor's data offset.
std::vector<std::byte> gguf_header(const GgufMetadata& metadata, const std::vector<GgufTensorSpec>& plan,
                                   std::vector<uint64_t>* offsets = nullptr);

}  // namespace qf::formats
