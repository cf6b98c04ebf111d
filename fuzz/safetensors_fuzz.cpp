// libFuzzer target: arbitrary bytes through the safetensors parser. A
// qf::Error is the expected answer to garbage; any other exception, a crash or
// a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto contents = qf::formats::parse_safetensors(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), "<fuzz input>");
    // Touch every byte of every accepted tensor so ASan sees any view that
    // points outside the input.
    uint8_t sum = 0;
    for (const auto& t : contents.tensors) {
      const std::byte* p = t.tensor.bytes();
      for (size_t i = 0; i < t.tensor.nbytes(); ++i) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(p[i]));
    }
    volatile uint8_t sink = sum;
    (void)sink;
  } catch (const qf::Error&) {
    // Rejected input: the parser did its job.
  }
  return 0;
}
