// Packing of unsigned codes of 1..8 bits into bytes, one row at a time.
// A row is a little-endian bit stream: code i occupies stream bits
// [i*b, (i+1)*b), stream bit j being bit (j % 8) of byte j / 8. So two 4-bit
// codes share a byte low nibble first, four 2-bit codes start at the low bits,
// 3-bit codes run on across byte boundaries, and 8-bit codes are the bytes.
// Unused bits at the end of the last byte are zero; each row starts on a byte
// boundary, so rows can be addressed independently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace qf::quant {

// Bytes a row of `count` codes of width `bits` (1..8) occupies.
size_t packed_bytes(int64_t count, int bits);

// Packs codes[i] (each < 2^bits, else qf::Error) into out[0, packed_bytes(codes.size(), bits)).
void pack_codes(std::span<const uint8_t> codes, int bits, std::span<uint8_t> out);
// Unpacks codes.size() codes from `packed` (at least packed_bytes(codes.size(), bits) bytes).
void unpack_codes(std::span<const uint8_t> packed, int bits, std::span<uint8_t> codes);

}  // namespace qf::quant
