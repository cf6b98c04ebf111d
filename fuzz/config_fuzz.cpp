// libFuzzer target: arbitrary bytes as a Hugging Face config.json through
// every model family's reader (model/arch), the RoPE frequency computation
// and the writer. A qf::Error (or a JSON parse error) is the expected answer
// to garbage; any other exception, a crash, a sanitizer report, or a config
// that does not read back equal to itself is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/rope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  qf::model::ModelConfig c;
  try {
    c = qf::model::ModelConfig::from_hf_json(j, "<fuzz input>");
  } catch (const qf::Error&) {
    return 0;  // rejected config: the reader did its job
  }
  // Every accepted config has RoPE frequencies for every layer kind (finite:
  // the runtime multiplies positions by them) and writes back to itself.
  for (const bool sliding : {false, true}) {
    const qf::model::RopeFrequencies f = qf::model::rope_frequencies(c, sliding, c.max_positions + 1);
    for (const double v : f.inv_freq)
      if (!(v == v)) std::abort();
  }
  const qf::model::ModelConfig back = qf::model::ModelConfig::from_hf_json(c.to_hf_json(), "<round trip>");
  if (!(back == c)) std::abort();
  return 0;
}
