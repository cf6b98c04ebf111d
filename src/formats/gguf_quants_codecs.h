// One codec per block type (internal to src/formats): decode one block,
// encode one row of whole blocks. gguf_quants.cpp dispatches to these and
// does the size and value checks; these trust their arguments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/gguf.h"

namespace qf::formats::gguf_detail {

inline uint8_t byte_at(const std::byte* p, size_t i) { return static_cast<uint8_t>(p[i]); }

struct BlockCodec {
  GgmlType type;
  size_t block;  // elements per block
  size_t bytes;  // bytes per block
  void (*decode_block)(const std::byte* block, float* out);
  // `w` is empty or one importance weight per element of `row`.
  void (*encode_row)(std::span<const float> row, std::byte* out, std::span<const float> w);
};

// Null for a type without a codec.
const BlockCodec* legacy_codec(GgmlType type);  // gguf_quants_legacy.cpp
const BlockCodec* k_codec(GgmlType type);       // gguf_quants_k.cpp

}  // namespace qf::formats::gguf_detail
