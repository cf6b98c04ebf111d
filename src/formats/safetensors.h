// The safetensors checkpoint format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON header, then the
// data section. Every header entry maps a tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// data section); the optional "__metadata__" entry is a string->string map.
//
// The reader validates like the reference implementation: sorted by offset,
// the tensors must tile the data section exactly (no overlap, no hole, no
// trailing bytes) and each byte count must equal dtype size x element count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/named_tensor.h"

namespace qf::formats {

// The reference implementation's limit; a larger header means a corrupt file.
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

struct SafetensorsContents {
  std::vector<NamedTensor> tensors;  // in data-section (file) order
  std::map<std::string, std::string> metadata;
};

// Parses a complete safetensors file held in memory. Tensors are read-only
// views into `bytes` that keep `owner` alive (owner may be null when the
// caller guarantees the lifetime). A tensor whose bytes are not aligned to its
// element size (possible only in files from non-reference writers) is copied
// instead, so typed access to it is always well-defined.
// Throws qf::Error starting with `display_name` for any malformed input.
SafetensorsContents parse_safetensors(std::span<const std::byte> bytes, const std::string& display_name,
                                      std::shared_ptr<const void> owner = nullptr);

// Memory-maps `path` and parses it; the views keep the mapping alive.
SafetensorsContents read_safetensors(const std::string& path);

// A sharded checkpoint: `index_path` is a model.safetensors.index.json whose
// "weight_map" maps each tensor name to a shard file in the same folder. All
// shards are opened; every mapped name must be in its shard and every shard
// tensor must be in the map. Tensors come shard by shard (shard names sorted),
// each shard in file order; metadata is the union of the shards' metadata.
SafetensorsContents read_safetensors_index(const std::string& index_path);

// The planned content of one tensor, known before its bytes exist.
struct TensorSpec {
  std::string name;
  DType dtype;
  Shape shape;
};

// Writes a safetensors file tensor by tensor, so a caller producing tensors
// one at a time (a quantizer) never holds them all. The header is written
// first from the plan; data goes to a temporary file that is renamed into
// place by finish(). Destroying the writer before finish() (an exception)
// removes the temporary file and leaves any existing target untouched.
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorSpec> plan,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The next planned tensor; its name, dtype and shape must match the plan.
  void write(const std::string& name, const Tensor& tensor);
  // Checks every planned tensor was written, then commits the file.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whole-checkpoint convenience: tensors in the given order, then `metadata`.
void write_safetensors(const std::string& path, std::span<const NamedTensor> tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The serialized header (JSON padded with spaces to a multiple of 8 bytes, as
// the reference writer does), without the 8-byte length prefix. Exposed for
// tests and tools that need to predict the file layout.
std::string safetensors_header(const std::vector<TensorSpec>& plan,
                               const std::map<std::string, std::string>& metadata);

}  // namespace qf::formats
