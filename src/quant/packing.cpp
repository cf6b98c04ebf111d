#include "quant/packing.h"

#include <cstring>

#include "core/error.h"

namespace qf::quant {
namespace {

// Widths dividing 8 (1, 2, 4): whole codes per byte. Others (3, 5, 6, 7): eight
// codes fill exactly B bytes. A ragged tail goes through a 64-bit accumulator.
template <int B>
void pack_impl(const uint8_t* c, size_t n, uint8_t* out) {
  if constexpr (B == 8) {
    if (n) std::memcpy(out, c, n);
    return;
  } else {
    constexpr size_t kCodes = 8 % B == 0 ? 8 / B : 8;  // codes per block
    constexpr size_t kBytes = kCodes * B / 8;           // bytes per block
    const size_t blocks = n / kCodes;
    for (size_t j = 0; j < blocks; ++j) {
      const uint8_t* src = c + j * kCodes;
      if constexpr (kBytes == 1) {
        uint32_t byte = 0;
        for (size_t k = 0; k < kCodes; ++k) byte |= static_cast<uint32_t>(src[k]) << (k * B);
        out[j] = static_cast<uint8_t>(byte);
      } else {
        uint64_t acc = 0;
        for (size_t k = 0; k < kCodes; ++k) acc |= static_cast<uint64_t>(src[k]) << (k * B);
        for (size_t k = 0; k < kBytes; ++k) out[j * kBytes + k] = static_cast<uint8_t>(acc >> (8 * k));
      }
    }
    const size_t rest = n - blocks * kCodes;
    if (rest) {
      uint64_t acc = 0;
      for (size_t k = 0; k < rest; ++k) acc |= static_cast<uint64_t>(c[blocks * kCodes + k]) << (k * B);
      const size_t bytes = (rest * B + 7) / 8;
      for (size_t k = 0; k < bytes; ++k) out[blocks * kBytes + k] = static_cast<uint8_t>(acc >> (8 * k));
    }
  }
}

template <int B>
void unpack_impl(const uint8_t* p, size_t n, uint8_t* c) {
  if constexpr (B == 8) {
    if (n) std::memcpy(c, p, n);
    return;
  } else {
    constexpr size_t kCodes = 8 % B == 0 ? 8 / B : 8;
    constexpr size_t kBytes = kCodes * B / 8;
    constexpr uint32_t kMask = (1u << B) - 1;
    const size_t blocks = n / kCodes;
    for (size_t j = 0; j < blocks; ++j) {
      uint8_t* dst = c + j * kCodes;
      if constexpr (kBytes == 1) {
        const uint32_t byte = p[j];
        for (size_t k = 0; k < kCodes; ++k) dst[k] = static_cast<uint8_t>((byte >> (k * B)) & kMask);
      } else {
        uint64_t acc = 0;
        for (size_t k = 0; k < kBytes; ++k) acc |= static_cast<uint64_t>(p[j * kBytes + k]) << (8 * k);
        for (size_t k = 0; k < kCodes; ++k) dst[k] = static_cast<uint8_t>((acc >> (k * B)) & kMask);
      }
    }
    const size_t rest = n - blocks * kCodes;
    if (rest) {
      uint64_t acc = 0;
      const size_t bytes = (rest * B + 7) / 8;
      for (size_t k = 0; k < bytes; ++k) acc |= static_cast<uint64_t>(p[blocks * kBytes + k]) << (8 * k);
      for (size_t k = 0; k < rest; ++k) c[blocks * kCodes + k] = static_cast<uint8_t>((acc >> (k * B)) & kMask);
    }
  }
}

void check_bits(int bits) { QF_CHECK(bits >= 1 && bits <= 8, "code width {} bits is not packable (1..8)", bits); }

}  // namespace

size_t packed_bytes(int64_t count, int bits) {
  check_bits(bits);
  QF_CHECK(count >= 0, "negative code count {}", count);
  const uint64_t n = static_cast<uint64_t>(count);
  return static_cast<size_t>(n / 8 * static_cast<uint64_t>(bits) + (n % 8 * static_cast<uint64_t>(bits) + 7) / 8);
}

void pack_codes(std::span<const uint8_t> codes, int bits, std::span<uint8_t> out) {
  const size_t need = packed_bytes(static_cast<int64_t>(codes.size()), bits);
  QF_CHECK(out.size() >= need, "packing {} {}-bit codes needs {} bytes, got {}", codes.size(), bits, need, out.size());
  uint32_t all = 0;
  for (const uint8_t c : codes) all |= c;
  QF_CHECK(bits == 8 || (all >> bits) == 0, "a code does not fit {} bits", bits);
  const uint8_t* c = codes.data();
  const size_t n = codes.size();
  switch (bits) {
    case 1: pack_impl<1>(c, n, out.data()); break;
    case 2: pack_impl<2>(c, n, out.data()); break;
    case 3: pack_impl<3>(c, n, out.data()); break;
    case 4: pack_impl<4>(c, n, out.data()); break;
    case 5: pack_impl<5>(c, n, out.data()); break;
    case 6: pack_impl<6>(c, n, out.data()); break;
    case 7: pack_impl<7>(c, n, out.data()); break;
    case 8: pack_impl<8>(c, n, out.data()); break;
  }
}

void unpack_codes(std::span<const uint8_t> packed, int bits, std::span<uint8_t> codes) {
  const size_t need = packed_bytes(static_cast<int64_t>(codes.size()), bits);
  QF_CHECK(packed.size() >= need, "unpacking {} {}-bit codes needs {} bytes, got {}", codes.size(), bits, need,
           packed.size());
  const uint8_t* p = packed.data();
  const size_t n = codes.size();
  switch (bits) {
    case 1: unpack_impl<1>(p, n, codes.data()); break;
    case 2: unpack_impl<2>(p, n, codes.data()); break;
    case 3: unpack_impl<3>(p, n, codes.data()); break;
    case 4: unpack_impl<4>(p, n, codes.data()); break;
    case 5: unpack_impl<5>(p, n, codes.data()); break;
    case 6: unpack_impl<6>(p, n, codes.data()); break;
    case 7: unpack_impl<7>(p, n, codes.data()); break;
    case 8: unpack_impl<8>(p, n, codes.data()); break;
  }
}

}  // namespace qf::quant
