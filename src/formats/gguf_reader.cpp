#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <unordered_set>

#include <fmt/format.h>

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "formats/gguf_quants.h"
#include "formats/strict_json.h"
#include "formats/tensor_view.h"

namespace qf::formats {
namespace {

// Values and tensor data are read in place; GGUF files are little-endian.
static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

constexpr size_t kGgufHeaderBytes = 4 + 4 + 8 + 8;
// The smallest possible entries: an empty key, a type and a 1-byte value; an
// empty name, n_dims 0, a type and an offset.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
// Containers grow as entries are actually read; reserving the claimed count
// up front would let a count that merely fits the file allocate many times
// the file's size (a std::string is larger than its 8-byte encoding).
constexpr uint64_t kMaxReserve = 1 << 16;

// Bounds-checked sequential reads; every failure names the offset and what
// was being read.
class Cursor {
 public:
  explicit Cursor(std::span<const std::byte> bytes) : bytes_(bytes) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  uint64_t file_size() const { return bytes_.size(); }

  const std::byte* take(uint64_t n, std::string_view what) {
    if (n > remaining())
      fail("{} at offset {} needs {} bytes but only {} remain in the {}-byte file (truncated?)", what, pos_, n,
           remaining(), bytes_.size());
    const std::byte* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }

  template <typename T>
  T read(std::string_view what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }

  std::string read_string(std::string_view what) {
    const size_t at = pos_;
    const auto n = read<uint64_t>(fmt::format("length of {}", what));
    if (n > remaining())
      fail("{} at offset {} has length {}, beyond the {} bytes left in the {}-byte file", what, at, n, remaining(),
           bytes_.size());
    const auto* p = reinterpret_cast<const char*>(take(n, what));
    return std::string(p, n);
  }

 private:
  std::span<const std::byte> bytes_;
  size_t pos_ = 0;
};

GgufValueType read_value_type(Cursor& c, std::string_view what) {
  const size_t at = c.pos();
  const auto t = c.read<uint32_t>(what);
  if (t > static_cast<uint32_t>(GgufValueType::Float64))
    fail("{} at offset {} is {}, not a known GGUF value type (0 to 12)", what, at, t);
  return static_cast<GgufValueType>(t);
}

bool read_bool(Cursor& c) {
  const size_t at = c.pos();
  const auto b = c.read<uint8_t>("bool value");
  if (b > 1) fail("bool value at offset {} is {}; a GGUF bool must be 0 or 1", at, b);
  return b == 1;
}

template <typename T>
GgufValue read_array_of(Cursor& c, uint64_t n) {
  std::vector<T> out;
  if constexpr (std::is_same_v<T, std::string>) {
    out.reserve(std::min(n, kMaxReserve));
    for (uint64_t i = 0; i < n; ++i) out.push_back(c.read_string("array string"));
  } else if constexpr (std::is_same_v<T, bool>) {
    out.reserve(std::min(n, kMaxReserve));
    for (uint64_t i = 0; i < n; ++i) out.push_back(read_bool(c));
  } else {
    const std::byte* p = c.take(n * sizeof(T), "array elements");
    out.resize(n);
    if (n) std::memcpy(out.data(), p, n * sizeof(T));
  }
  return GgufValue(std::move(out));
}

// Smallest encoding of one value of a (non-array) type.
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UInt8: case GgufValueType::Int8: case GgufValueType::Bool: return 1;
    case GgufValueType::UInt16: case GgufValueType::Int16: return 2;
    case GgufValueType::UInt32: case GgufValueType::Int32: case GgufValueType::Float32: return 4;
    case GgufValueType::String: case GgufValueType::UInt64: case GgufValueType::Int64:
    case GgufValueType::Float64: return 8;
    case GgufValueType::Array: return 12;
  }
  return 1;
}

GgufValue read_scalar(Cursor& c, GgufValueType t) {
  switch (t) {
    case GgufValueType::UInt8: return c.read<uint8_t>("uint8 value");
    case GgufValueType::Int8: return c.read<int8_t>("int8 value");
    case GgufValueType::UInt16: return c.read<uint16_t>("uint16 value");
    case GgufValueType::Int16: return c.read<int16_t>("int16 value");
    case GgufValueType::UInt32: return c.read<uint32_t>("uint32 value");
    case GgufValueType::Int32: return c.read<int32_t>("int32 value");
    case GgufValueType::Float32: return c.read<float>("float32 value");
    case GgufValueType::Bool: return read_bool(c);
    case GgufValueType::String: return c.read_string("string value");
    case GgufValueType::UInt64: return c.read<uint64_t>("uint64 value");
    case GgufValueType::Int64: return c.read<int64_t>("int64 value");
    case GgufValueType::Float64: return c.read<double>("float64 value");
    case GgufValueType::Array: break;
  }
  fail("internal: read_scalar of an array");
}

GgufValue read_array(Cursor& c) {
  const GgufValueType t = read_value_type(c, "array element type");
  const size_t at = c.pos();
  const auto n = c.read<uint64_t>("array length");
  QF_CHECK(t != GgufValueType::Array, "array at offset {} holds arrays; nested arrays are not supported", at);
  const uint64_t min = min_value_bytes(t);
  if (n > c.remaining() / min)
    fail("array at offset {} claims {} {} elements, more than the {} bytes left in the {}-byte file could hold", at,
         n, gguf_value_type_name(t), c.remaining(), c.file_size());
  switch (t) {
    case GgufValueType::UInt8: return read_array_of<uint8_t>(c, n);
    case GgufValueType::Int8: return read_array_of<int8_t>(c, n);
    case GgufValueType::UInt16: return read_array_of<uint16_t>(c, n);
    case GgufValueType::Int16: return read_array_of<int16_t>(c, n);
    case GgufValueType::UInt32: return read_array_of<uint32_t>(c, n);
    case GgufValueType::Int32: return read_array_of<int32_t>(c, n);
    case GgufValueType::Float32: return read_array_of<float>(c, n);
    case GgufValueType::Bool: return read_array_of<bool>(c, n);
    case GgufValueType::String: return read_array_of<std::string>(c, n);
    case GgufValueType::UInt64: return read_array_of<uint64_t>(c, n);
    case GgufValueType::Int64: return read_array_of<int64_t>(c, n);
    case GgufValueType::Float64: return read_array_of<double>(c, n);
    case GgufValueType::Array: break;
  }
  fail("internal: unreachable array type");
}

void read_header(Cursor& c, GgufContents& out, uint64_t& n_tensors, uint64_t& n_kv) {
  const uint64_t size = c.file_size();
  QF_CHECK(size >= 4, "file is {} bytes, too short for the GGUF magic", size);
  const auto* magic = reinterpret_cast<const char*>(c.take(4, "magic"));
  if (std::memcmp(magic, "GGUF", 4) != 0)
    fail("not a GGUF file: bad magic {} (expected \"GGUF\")", quote(std::string_view(magic, 4)));
  QF_CHECK(size >= kGgufHeaderBytes, "file is {} bytes, shorter than the {}-byte GGUF header", size, kGgufHeaderBytes);
  const auto version = c.read<uint32_t>("version");
  if (version != 2 && version != 3) {
    const uint32_t swapped = __builtin_bswap32(version);
    QF_CHECK(swapped != 2 && swapped != 3, "big-endian GGUF (version {} byte-swapped) is not supported", swapped);
    fail("unsupported GGUF version {} (only versions 2 and 3 can be read)", version);
  }
  out.version = version;
  n_tensors = c.read<uint64_t>("tensor count");
  n_kv = c.read<uint64_t>("metadata key-value count");
  // Counts are checked against the bytes left before anything is allocated.
  if (n_kv > c.remaining() / kMinKvBytes)
    fail("metadata key-value count {} is absurd: {} pairs of at least {} bytes cannot fit in the {} bytes left", n_kv,
         n_kv, kMinKvBytes, c.remaining());
  if (n_tensors > c.remaining() / kMinTensorInfoBytes)
    fail("tensor count {} is absurd: {} tensor infos of at least {} bytes cannot fit in the {} bytes left", n_tensors,
         n_tensors, kMinTensorInfoBytes, c.remaining());
  if (n_kv * kMinKvBytes + n_tensors * kMinTensorInfoBytes > c.remaining())
    fail("{} metadata pairs and {} tensor infos cannot fit in the {} bytes left of the file", n_kv, n_tensors,
         c.remaining());
}

void read_metadata(Cursor& c, GgufContents& out, uint64_t n_kv) {
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t at = c.pos();
    std::string key = c.read_string(fmt::format("key of metadata pair {}", i));
    with_context(fmt::format("metadata key {}", quote(key)), [&] {
      const GgufValueType t = read_value_type(c, "value type");
      GgufValue value = t == GgufValueType::Array ? read_array(c) : read_scalar(c, t);
      if (out.metadata.contains(key)) fail("duplicate key (second occurrence at offset {})", at);
      out.metadata.add(key, std::move(value));
    });
  }
  if (const GgufValue* a = out.metadata.find(kGgufAlignmentKey)) {
    const auto* v = a->get_if<uint32_t>();
    if (!v) fail("{} must be a uint32, got {}", kGgufAlignmentKey, gguf_value_type_name(a->type()));
    if (*v == 0 || !std::has_single_bit(*v)) fail("{} is {}; it must be a power of two", kGgufAlignmentKey, *v);
    out.alignment = *v;
  }
}

void read_tensor_infos(Cursor& c, GgufContents& out, uint64_t n_tensors) {
  std::unordered_set<std::string> names;
  out.tensors.reserve(std::min(n_tensors, kMaxReserve));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo info;
    info.name = c.read_string(fmt::format("name of tensor {}", i));
    with_context(fmt::format("tensor {}", quote(info.name)), [&] {
      QF_CHECK(names.insert(info.name).second, "duplicate tensor name");
      const auto n_dims = c.read<uint32_t>("n_dims");
      QF_CHECK(n_dims <= static_cast<uint32_t>(kGgufMaxDims), "n_dims is {}; GGUF tensors have at most {}", n_dims,
               kGgufMaxDims);
      for (uint32_t d = 0; d < n_dims; ++d) {
        const auto v = c.read<uint64_t>("dimension");
        QF_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "dimension {} is {}, too large", d,
                 v);
        info.ggml_dims.push_back(v);
      }
      info.shape.assign(info.ggml_dims.rbegin(), info.ggml_dims.rend());
      const auto type_id = c.read<uint32_t>("ggml type");
      info.type = static_cast<GgmlType>(type_id);
      QF_CHECK(find_ggml_type(info.type), "{} (not in the table of GGUF tensor types)", ggml_type_name(info.type));
      info.offset = c.read<uint64_t>("data offset");
      info.nbytes = ggml_nbytes(info.type, info.shape);
      QF_CHECK(info.offset % out.alignment == 0,
               "data offset {} is misaligned: not a multiple of the alignment {}", info.offset, out.alignment);
    });
    out.tensors.push_back(std::move(info));
  }
}

// Every tensor inside the data section, no two sharing a byte.
void check_data_layout(const GgufContents& out, uint64_t data_size) {
  for (const auto& t : out.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail("tensor {}: data [{}, {}+{}) extends beyond the {}-byte data section (file truncated?)", quote(t.name),
           t.offset, t.offset, t.nbytes, data_size);
  }
  std::vector<const GgufTensorInfo*> sorted;
  for (const auto& t : out.tensors)
    if (t.nbytes > 0) sorted.push_back(&t);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const GgufTensorInfo& a = *sorted[i - 1];
    const GgufTensorInfo& b = *sorted[i];
    if (a.offset + a.nbytes > b.offset)
      fail("tensors {} (data [{}, {})) and {} (data [{}, {})) overlap", quote(a.name), a.offset, a.offset + a.nbytes,
           quote(b.name), b.offset, b.offset + b.nbytes);
  }
}

GgufContents parse_gguf_bytes(std::span<const std::byte> bytes, const std::string& display_name,
                   const std::shared_ptr<const void>& owner) {
  GgufContents out;
  out.display_name = display_name;
  Cursor c(bytes);
  uint64_t n_tensors = 0, n_kv = 0;
  read_header(c, out, n_tensors, n_kv);
  read_metadata(c, out, n_kv);
  read_tensor_infos(c, out, n_tensors);

  const uint64_t end_of_infos = c.pos();
  const uint64_t data_offset = end_of_infos + (out.alignment - end_of_infos % out.alignment) % out.alignment;
  if (data_offset > bytes.size()) {
    // Padding may be missing only when there is no data to pad for.
    QF_CHECK(n_tensors == 0,
             "the data section would start at offset {} (tensor infos end at {}, aligned to {}), beyond the end of "
             "the {}-byte file (truncated?)",
             data_offset, end_of_infos, out.alignment, bytes.size());
    out.data_offset = bytes.size();
  } else {
    out.data_offset = data_offset;
  }
  check_data_layout(out, bytes.size() - out.data_offset);
  out.file_bytes = bytes;
  out.owner = owner;
  return out;
}

}  // namespace

const GgufTensorInfo* GgufContents::find(std::string_view name) const {
  const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const GgufTensorInfo& t) { return t.name == name; });
  return it == tensors.end() ? nullptr : &*it;
}

std::span<const std::byte> GgufContents::tensor_bytes(const GgufTensorInfo& info) const {
  // The parser checked the bounds; this guards against an info that does not
  // belong to these contents.
  QF_CHECK(data_offset <= file_bytes.size() && info.offset <= file_bytes.size() - data_offset &&
               info.nbytes <= file_bytes.size() - data_offset - info.offset,
           "{}: tensor {} lies outside the file", display_name, quote(info.name));
  return file_bytes.subspan(data_offset + info.offset, info.nbytes);
}

Tensor GgufContents::tensor(const GgufTensorInfo& info) const {
  const GgmlTypeInfo* type = find_ggml_type(info.type);
  QF_CHECK(type, "{}: tensor {} has {}", display_name, quote(info.name), ggml_type_name(info.type));
  if (!type->dtype) {
    // Block types are handed out dequantized: every consumer computes in float.
    if (gguf_is_codec_type(info.type))
      return with_context(fmt::format("{}: tensor {}", display_name, quote(info.name)),
                          [&] { return gguf_dequantize_tensor(info.type, tensor_bytes(info), info.shape); });
    fail("{}: tensor {} is {}, which is not supported yet (F32, F16, BF16, F64, integer tensors and Q4_0, Q4_1, "
         "Q5_0, Q5_1, Q8_0, Q2_K..Q6_K can be read)",
         display_name, quote(info.name), type->name);
  }
  return view_or_copy(*type->dtype, info.shape, tensor_bytes(info).data(), owner);
}

std::vector<NamedTensor> GgufContents::named_tensors() const {
  std::vector<NamedTensor> out;
  out.reserve(tensors.size());
  for (const auto& info : tensors) out.push_back({info.name, tensor(info)});
  return out;
}

GgufContents parse_gguf(std::span<const std::byte> bytes, const std::string& display_name,
                        std::shared_ptr<const void> owner) {
  return with_context(display_name, [&] { return parse_gguf_bytes(bytes, display_name, owner); });
}

GgufContents read_gguf(const std::string& path) {
  const auto file = MappedFile::open(path);
  return parse_gguf(file->bytes(), path, file);
}

bool looks_like_gguf(std::span<const std::byte> bytes) {
  return bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0;
}

}  // namespace qf::formats
