#include "model/gguf_packing.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "formats/gguf_quants.h"

namespace qf::model {
namespace {

constexpr int64_t kBlock = 32;

uint16_t read_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

bool gguf_kernels_support(formats::GgmlType type) {
  return type == formats::GgmlType::Q4_0 || type == formats::GgmlType::Q8_0;
}

std::shared_ptr<const kernels::PackedMatrix> pack_gguf_blocks(const formats::GgufBlocks& b, int64_t cols) {
  QF_CHECK(gguf_kernels_support(b.type), "{} blocks have no integer kernel (Q4_0 and Q8_0 do)",
           formats::ggml_type_name(b.type));
  QF_CHECK(b.rows.ndim() == 2 && cols % kBlock == 0 &&
               b.rows.dim(1) == static_cast<int64_t>(formats::gguf_row_bytes(b.type, cols)),
           "{} blocks of shape {} do not hold rows of {} weights", formats::ggml_type_name(b.type),
           shape_to_string(b.rows.shape()), cols);
  const int64_t rows = b.rows.dim(0), groups = cols / kBlock;
  const bool q4 = b.type == formats::GgmlType::Q4_0;
  auto packed = std::make_shared<kernels::PackedMatrix>(q4 ? 4 : 8, rows, cols, kBlock);
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  std::vector<float> scales(static_cast<size_t>(groups));
  const std::vector<uint8_t> zeros(static_cast<size_t>(groups), q4 ? 8 : 128);
  const int64_t block_bytes = q4 ? 2 + kBlock / 2 : 2 + kBlock;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = b.rows.data<uint8_t>() + r * b.rows.dim(1);
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* blk = row + g * block_bytes;
      scales[static_cast<size_t>(g)] = f16_to_f32(read_u16(blk));
      uint8_t* c = codes.data() + g * kBlock;
      if (q4) {
        // ggml's Q4_0: byte j holds weight j in its low nibble and weight j + 16 in its high one.
        for (int64_t j = 0; j < kBlock / 2; ++j) {
          c[j] = blk[2 + j] & 15;
          c[j + kBlock / 2] = blk[2 + j] >> 4;
        }
      } else {
        for (int64_t j = 0; j < kBlock; ++j) c[j] = static_cast<uint8_t>(blk[2 + j] ^ 0x80);  // int8 q -> q + 128
      }
    }
    packed->set_row(r, codes, scales, zeros);
  }
  return packed;
}

}  // namespace qf::model
