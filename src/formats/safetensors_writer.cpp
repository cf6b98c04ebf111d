#include <bit>
#include <cstdint>
#include <limits>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"

namespace qf::formats {

// Tensor bytes are written as they sit in memory; safetensors is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors writer assumes a little-endian host");

std::string safetensors_header(const std::vector<TensorSpec>& plan,
                               const std::map<std::string, std::string>& metadata) {
  auto check_utf8 = [](std::string_view what, const std::string& s) {
    if (const auto bad = find_invalid_utf8(s)) fail("{} {} is not valid UTF-8 (byte {})", what, quote(s), *bad);
  };
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    for (const auto& [k, v] : metadata) {
      check_utf8("metadata key", k);
      check_utf8("metadata value", v);
    }
    header["__metadata__"] = metadata;
  }
  auto& entries = static_cast<std::vector<std::pair<const std::string, nlohmann::ordered_json>>&>(
      header.get_ref<nlohmann::ordered_json::object_t&>());
  entries.reserve(entries.size() + plan.size());
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const TensorSpec& t : plan) {
    check_utf8("tensor name", t.name);
    QF_CHECK(t.name != "__metadata__", "\"__metadata__\" is reserved and cannot name a tensor");
    QF_CHECK(names.insert(t.name).second, "duplicate tensor name {}", quote(t.name));
    const auto numel = static_cast<uint64_t>(
        with_context("tensor " + quote(t.name), [&] { return shape_numel(t.shape); }));
    const uint64_t size = dtype_size(t.dtype);
    QF_CHECK(numel <= (std::numeric_limits<uint64_t>::max() - offset) / size, "tensor {}: shape {} is too large",
             quote(t.name), shape_to_string(t.shape));
    const uint64_t end = offset + numel * size;
    // Append directly: ordered_json's operator[] searches the keys linearly,
    // which made many-tensor headers quadratic. Names are unique (checked above).
    entries.emplace_back(t.name, nlohmann::ordered_json{{"dtype", dtype_name(t.dtype)},
                                                        {"shape", t.shape},
                                                        {"data_offsets", {offset, end}}});
    offset = end;
  }
  std::string text = header.dump();
  // Pad so the data section starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

struct SafetensorsWriter::Impl {
  Impl(std::string path, std::vector<TensorSpec> p) : file(std::move(path)), plan(std::move(p)) {}
  AtomicFileWriter file;
  std::vector<TensorSpec> plan;
  size_t next = 0;
};

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> plan,
                                     const std::map<std::string, std::string>& metadata) {
  const std::string header = with_context(path, [&] { return safetensors_header(plan, metadata); });
  impl_ = std::make_unique<Impl>(std::move(path), std::move(plan));
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  impl_->file.write(length, sizeof length);
  impl_->file.write(header);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(const std::string& name, const Tensor& tensor) {
  Impl& w = *impl_;
  with_context(w.file.path(), [&] {
    QF_CHECK(w.next < w.plan.size(), "tensor {} written after all {} planned tensors", quote(name), w.plan.size());
    const TensorSpec& spec = w.plan[w.next];
    QF_CHECK(name == spec.name, "tensor {} written where {} was planned", quote(name), quote(spec.name));
    QF_CHECK(tensor.dtype() == spec.dtype && tensor.shape() == spec.shape,
             "tensor {} is {} {} but was planned as {} {}", quote(name), dtype_name(tensor.dtype()),
             shape_to_string(tensor.shape()), dtype_name(spec.dtype), shape_to_string(spec.shape));
    QF_CHECK(tensor.nbytes() == 0 || !tensor.empty(), "tensor {} has no data", quote(name));
  });
  w.file.write(tensor.bytes(), tensor.nbytes());
  ++w.next;
}

void SafetensorsWriter::finish() {
  Impl& w = *impl_;
  QF_CHECK(w.next == w.plan.size(), "{}: only {} of {} planned tensors were written", w.file.path(), w.next,
           w.plan.size());
  w.file.commit();
}

void write_safetensors(const std::string& path, std::span<const NamedTensor> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> plan;
  plan.reserve(tensors.size());
  for (const auto& t : tensors) plan.push_back({t.name, t.tensor.dtype(), t.tensor.shape()});
  SafetensorsWriter writer(path, std::move(plan), metadata);
  for (const auto& t : tensors) writer.write(t.name, t.tensor);
  writer.finish();
}

}  // namespace qf::formats
