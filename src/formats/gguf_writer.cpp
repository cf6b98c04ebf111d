#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <unordered_set>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/float_formats.h"
#include "formats/gguf.h"
#include "formats/strict_json.h"

namespace qf::formats {

// Values and tensor bytes are written as they sit in memory; GGUF is little-endian.
static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

namespace {

// Larger alignments are legal but only waste space; refusing them keeps a
// typo from producing gigabytes of padding.
constexpr uint32_t kMaxWriteAlignment = 1u << 20;
constexpr size_t kMaxKeyBytes = 65535;

// Appends with resize + memcpy: GCC 12 at -O3 warns falsely about
// vector::insert of raw byte ranges.
class Buffer {
 public:
  std::vector<std::byte> bytes;

  void put_bytes(const void* p, size_t n) {
    if (n == 0) return;
    const size_t at = bytes.size();
    bytes.resize(at + n);
    std::memcpy(bytes.data() + at, p, n);
  }
  template <typename T>
  void put(T v) {
    put_bytes(&v, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    put_bytes(s.data(), s.size());
  }
  void put_value(const GgufValue& value) {
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(v);
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(v ? 1 : 0);
          } else if constexpr (std::is_same_v<T, GgufArray>) {
            put<uint32_t>(static_cast<uint32_t>(value.array_type()));
            put<uint64_t>(value.array_size());
            std::visit(
                [&](const auto& elems) {
                  using E = typename std::decay_t<decltype(elems)>::value_type;
                  if constexpr (std::is_same_v<E, std::string>) {
                    for (const auto& e : elems) put_string(e);
                  } else if constexpr (std::is_same_v<E, bool>) {
                    for (const bool e : elems) put<uint8_t>(e ? 1 : 0);
                  } else {
                    put_bytes(elems.data(), elems.size() * sizeof(E));
                  }
                },
                v);
          } else {
            put(v);
          }
        },
        value.storage());
  }
};

uint64_t align_up(uint64_t x, uint64_t alignment) { return x + (alignment - x % alignment) % alignment; }

uint32_t write_alignment(const GgufMetadata& metadata) {
  const GgufValue* a = metadata.find(kGgufAlignmentKey);
  if (!a) return kGgufDefaultAlignment;
  const auto* v = a->get_if<uint32_t>();
  QF_CHECK(v, "{} must be a uint32, got {}", kGgufAlignmentKey, gguf_value_type_name(a->type()));
  QF_CHECK(*v != 0 && std::has_single_bit(*v), "{} is {}; it must be a power of two", kGgufAlignmentKey, *v);
  QF_CHECK(*v <= kMaxWriteAlignment, "{} is {}; refusing to write an alignment above {}", kGgufAlignmentKey, *v,
           kMaxWriteAlignment);
  return *v;
}

// Sizes of the planned tensors, validating the plan.
std::vector<uint64_t> plan_sizes(const std::vector<GgufTensorSpec>& plan) {
  std::unordered_set<std::string_view> names;
  std::vector<uint64_t> sizes;
  sizes.reserve(plan.size());
  for (const GgufTensorSpec& t : plan) {
    QF_CHECK(!t.name.empty(), "a tensor has an empty name");
    QF_CHECK(t.name.size() <= kGgufMaxTensorName, "tensor name {} is {} bytes; GGUF readers accept at most {}",
             quote(t.name), t.name.size(), kGgufMaxTensorName);
    QF_CHECK(names.insert(t.name).second, "duplicate tensor name {}", quote(t.name));
    QF_CHECK(t.shape.size() <= static_cast<size_t>(kGgufMaxDims), "tensor {}: shape {} has more than {} dimensions",
             quote(t.name), shape_to_string(t.shape), kGgufMaxDims);
    sizes.push_back(with_context("tensor " + quote(t.name), [&] { return ggml_nbytes(t.type, t.shape); }));
  }
  return sizes;
}

bool is_convertible_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

float load_float(DType t, const std::byte* p) {
  if (t == DType::F32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

void store_float(DType t, float x, std::byte* p) {
  if (t == DType::F32) {
    std::memcpy(p, &x, 4);
    return;
  }
  const uint16_t h = t == DType::F16 ? f32_to_f16(x) : f32_to_bf16(x);
  std::memcpy(p, &h, 2);
}

}  // namespace

std::vector<std::byte> gguf_header(const GgufMetadata& metadata, const std::vector<GgufTensorSpec>& plan,
                                   std::vector<uint64_t>* offsets) {
  const uint32_t alignment = write_alignment(metadata);
  for (const auto& [key, value] : metadata) {
    QF_CHECK(!key.empty(), "a metadata key is empty");
    QF_CHECK(key.size() <= kMaxKeyBytes, "metadata key {} is {} bytes; GGUF allows at most {}", quote(key),
             key.size(), kMaxKeyBytes);
  }
  const std::vector<uint64_t> sizes = plan_sizes(plan);

  Buffer b;
  b.put_bytes("GGUF", 4);
  b.put<uint32_t>(kGgufVersion);
  b.put<uint64_t>(plan.size());
  b.put<uint64_t>(metadata.size());
  for (const auto& [key, value] : metadata) {
    b.put_string(key);
    b.put<uint32_t>(static_cast<uint32_t>(value.type()));
    b.put_value(value);
  }
  uint64_t offset = 0;
  if (offsets) offsets->clear();
  for (size_t i = 0; i < plan.size(); ++i) {
    const GgufTensorSpec& t = plan[i];
    b.put_string(t.name);
    b.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) b.put<uint64_t>(static_cast<uint64_t>(*d));
    b.put<uint32_t>(static_cast<uint32_t>(t.type));
    b.put<uint64_t>(offset);
    if (offsets) offsets->push_back(offset);
    QF_CHECK(sizes[i] <= std::numeric_limits<uint64_t>::max() - alignment - offset, "tensor data exceeds 64 bits");
    offset = align_up(offset + sizes[i], alignment);
  }
  b.bytes.resize(align_up(b.bytes.size(), alignment), std::byte{0});
  return std::move(b.bytes);
}

struct GgufWriter::Impl {
  Impl(std::string path, std::vector<GgufTensorSpec> p, std::vector<uint64_t> s, uint32_t a)
      : file(std::move(path)), plan(std::move(p)), sizes(std::move(s)), alignment(a) {}
  AtomicFileWriter file;
  std::vector<GgufTensorSpec> plan;
  std::vector<uint64_t> sizes;
  uint32_t alignment;
  size_t next = 0;

  const GgufTensorSpec& expect(const std::string& name) {
    QF_CHECK(next < plan.size(), "tensor {} written after all {} planned tensors", quote(name), plan.size());
    const GgufTensorSpec& spec = plan[next];
    QF_CHECK(name == spec.name, "tensor {} written where {} was planned", quote(name), quote(spec.name));
    return spec;
  }

  void pad(uint64_t nbytes) {
    static constexpr std::byte zeros[4096] = {};
    uint64_t n = (alignment - nbytes % alignment) % alignment;
    while (n > 0) {
      const uint64_t k = std::min<uint64_t>(n, sizeof zeros);
      file.write(zeros, k);
      n -= k;
    }
  }
};

GgufWriter::GgufWriter(std::string path, const GgufMetadata& metadata, std::vector<GgufTensorSpec> plan) {
  std::vector<std::byte> header;
  std::vector<uint64_t> sizes;
  uint32_t alignment = kGgufDefaultAlignment;
  with_context(path, [&] {
    header = gguf_header(metadata, plan);
    sizes = plan_sizes(plan);
    alignment = write_alignment(metadata);
  });
  impl_ = std::make_unique<Impl>(std::move(path), std::move(plan), std::move(sizes), alignment);
  impl_->file.write(header.data(), header.size());
}

GgufWriter::~GgufWriter() = default;

void GgufWriter::write(const std::string& name, const Tensor& tensor) {
  Impl& w = *impl_;
  const GgufTensorSpec* spec = nullptr;
  const GgmlTypeInfo* type = nullptr;
  with_context(w.file.path(), [&] {
    spec = &w.expect(name);
    type = find_ggml_type(spec->type);
    QF_CHECK(tensor.shape() == spec->shape, "tensor {} has shape {} but was planned as {}", quote(name),
             shape_to_string(tensor.shape()), shape_to_string(spec->shape));
    QF_CHECK(tensor.nbytes() == 0 || !tensor.empty(), "tensor {} has no data", quote(name));
    const bool same = type->dtype == tensor.dtype();
    const bool convert = type->dtype && is_convertible_float(*type->dtype) && is_convertible_float(tensor.dtype());
    QF_CHECK(same || convert, "tensor {} is {} but was planned as {}, and cannot be converted", quote(name),
             dtype_name(tensor.dtype()), type->name);
  });
  const DType to = *type->dtype;
  if (to == tensor.dtype()) {
    w.file.write(tensor.bytes(), tensor.nbytes());
  } else {
    // Converted in chunks, so a large tensor never needs a second full copy.
    constexpr int64_t kChunk = 1 << 16;
    const DType from = tensor.dtype();
    const size_t in_size = dtype_size(from), out_size = dtype_size(to);
    std::vector<std::byte> buffer(static_cast<size_t>(kChunk) * out_size);
    const std::byte* src = tensor.bytes();
    for (int64_t start = 0, n = tensor.numel(); start < n; start += kChunk) {
      const int64_t count = std::min(kChunk, n - start);
      for (int64_t i = 0; i < count; ++i)
        store_float(to, load_float(from, src + (start + i) * in_size), buffer.data() + i * out_size);
      w.file.write(buffer.data(), static_cast<size_t>(count) * out_size);
    }
  }
  w.pad(w.sizes[w.next]);
  ++w.next;
}

void GgufWriter::write_raw(const std::string& name, std::span<const std::byte> bytes) {
  Impl& w = *impl_;
  with_context(w.file.path(), [&] {
    w.expect(name);
    QF_CHECK(bytes.size() == w.sizes[w.next], "tensor {}: {} raw bytes given but {} {} needs {}", quote(name),
             bytes.size(), ggml_type_name(w.plan[w.next].type), shape_to_string(w.plan[w.next].shape),
             w.sizes[w.next]);
  });
  w.file.write(bytes.data(), bytes.size());
  w.pad(bytes.size());
  ++w.next;
}

void GgufWriter::finish() {
  Impl& w = *impl_;
  QF_CHECK(w.next == w.plan.size(), "{}: only {} of {} planned tensors were written", w.file.path(), w.next,
           w.plan.size());
  w.file.commit();
}

void write_gguf(const std::string& path, const GgufMetadata& metadata, std::span<const NamedTensor> tensors) {
  std::vector<GgufTensorSpec> plan;
  plan.reserve(tensors.size());
  for (const auto& t : tensors) {
    const auto type = ggml_type_from_dtype(t.tensor.dtype());
    if (!type)
      fail("{}: tensor {} has dtype {}, which GGUF has no type for", path, quote(t.name), dtype_name(t.tensor.dtype()));
    plan.push_back({t.name, *type, t.tensor.shape()});
  }
  GgufWriter writer(path, metadata, std::move(plan));
  for (const auto& t : tensors) writer.write(t.name, t.tensor);
  writer.finish();
}

}  // namespace qf::formats
