#include "formats/gguf_grid.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "formats/gguf_quants.h"
#include "quant/packing.h"

namespace qf::formats {

std::optional<quant::Scheme> ggml_grid_scheme(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: return quant::Scheme::parse("int4:g32:full:f16scale");
    case GgmlType::Q5_0: return quant::Scheme::parse("int5:g32:full:f16scale");
    case GgmlType::Q8_0: return quant::Scheme::parse("int8:g32:f16scale");
    default: return std::nullopt;
  }
}

std::optional<GgmlType> ggml_type_for_scheme(const quant::Scheme& scheme) {
  for (const GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) {
    // The restricted range [-(2^(b-1)-1), 2^(b-1)-1] is a subset of the
    // same grid with the same stored codes (q + 2^(b-1)): GPTQ's symmetric
    // int4 checkpoints become Q4_0 exactly.
    quant::Scheme grid = *ggml_grid_scheme(t);
    if (grid == scheme) return t;
    grid.full_range = !grid.full_range;
    if (grid == scheme) return t;
  }
  return std::nullopt;
}

std::optional<GgufBlocks> gguf_blocks_from_quantized(const quant::QuantizedTensor& q) {
  const auto type = ggml_type_for_scheme(q.scheme);
  if (!type || q.shape.size() != 2 || q.cols() % 32 != 0) return std::nullopt;
  q.validate();
  const int64_t rows = q.rows(), cols = q.cols(), groups = cols / 32;
  const size_t block_bytes = find_ggml_type(*type)->type_size;
  Tensor out = Tensor::zeros(DType::U8, {rows, static_cast<int64_t>(gguf_row_bytes(*type, cols))});
  auto* dst = reinterpret_cast<std::byte*>(out.mutable_data<uint8_t>());
  const uint8_t* packed = q.codes.data<uint8_t>();
  const int64_t packed_row = q.codes.dim(1);
  const uint16_t* scales = q.scales.data<uint16_t>();
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    quant::unpack_codes({packed + r * packed_row, static_cast<size_t>(packed_row)}, q.scheme.bits, codes);
    for (int64_t g = 0; g < groups; ++g) {
      std::byte* b = dst + (r * groups + g) * static_cast<int64_t>(block_bytes);
      const uint8_t* c = codes.data() + g * 32;
      std::memcpy(b, &scales[r * groups + g], 2);  // the fp16 scale is ggml's d as it is
      switch (*type) {
        case GgmlType::Q4_0:  // stored code = q + 8 = ggml's nibble
          for (int j = 0; j < 16; ++j) b[2 + j] = std::byte(c[j] | (c[j + 16] << 4));
          break;
        case GgmlType::Q5_0: {  // stored code = q + 16
          uint32_t qh = 0;
          for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((c[j] >> 4) & 1) << j;
          std::memcpy(b + 2, &qh, 4);
          for (int j = 0; j < 16; ++j) b[6 + j] = std::byte((c[j] & 0xF) | ((c[j + 16] & 0xF) << 4));
          break;
        }
        default:  // Q8_0: stored code = q + 128
          for (int j = 0; j < 32; ++j) b[2 + j] = std::byte(static_cast<uint8_t>(static_cast<int8_t>(c[j] - 128)));
          break;
      }
    }
  }
  return GgufBlocks{*type, std::move(out)};
}

}  // namespace qf::formats
