// libFuzzer target: arbitrary bytes through the GGUF parser and the model
// mapping on top of it. A qf::Error is the expected answer to garbage; any
// other exception, a crash or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"

namespace {

uint8_t touch(std::span<const std::byte> bytes) {
  uint8_t sum = 0;
  for (const std::byte b : bytes) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(b));
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  qf::formats::GgufContents contents;
  try {
    contents = qf::formats::parse_gguf(bytes, "<fuzz input>");
  } catch (const qf::Error&) {
    return 0;  // rejected input: the parser did its job
  }
  // Touch every byte of every accepted tensor, so ASan sees any range that
  // points outside the input, and build the Tensor views where supported.
  uint8_t sum = 0;
  size_t text = 0;
  for (const auto& info : contents.tensors) {
    sum = static_cast<uint8_t>(sum + touch(contents.tensor_bytes(info)));
    try {
      const qf::Tensor t = contents.tensor(info);
      sum = static_cast<uint8_t>(sum + touch({t.bytes(), t.nbytes()}));
    } catch (const qf::Error&) {
      // A block type: not supported yet.
    }
  }
  for (const auto& [key, value] : contents.metadata) text += key.size() + value.to_string().size();
  // Hostile metadata through the model mapping: config, vocab, names, shapes.
  try {
    const auto model = qf::formats::gguf_model_from_contents(contents);
    for (const auto& t : model.tensors) sum = static_cast<uint8_t>(sum + touch({t.tensor.bytes(), t.tensor.nbytes()}));
  } catch (const qf::Error&) {
  }
  volatile uint8_t sink = sum;
  volatile size_t sink2 = text;
  (void)sink;
  (void)sink2;
  return 0;
}
