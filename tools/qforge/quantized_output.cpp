#include "quantized_output.h"

#include <fmt/format.h>

#include <functional>

#include "core/error.h"
#include "model/quantized_formats.h"

namespace qf::cli {
namespace {

struct Output {
  std::string name;
  std::function<quant::Scheme(const quant::Scheme&)> adapt;
  std::function<void(const std::string&, const model::QuantizedModel&, const tokenizer::Vocab&, const std::string&)>
      write;
};

Output layout_output(model::QuantizedFormat f) {
  return {std::string(model::quantized_format_name(f)),
          [f](const quant::Scheme& s) { return model::scheme_for_format(f, s); },
          [f](const std::string& out, const model::QuantizedModel& qm, const tokenizer::Vocab& vocab,
              const std::string& source) { model::save_quantized(f, out, qm, vocab, source); }};
}

// One row per output layout; GGUF adds its own row here.
const std::vector<Output>& outputs() {
  static const std::vector<Output> table = {
      layout_output(model::QuantizedFormat::Qforge),
      layout_output(model::QuantizedFormat::Gptq),
      layout_output(model::QuantizedFormat::Awq),
      layout_output(model::QuantizedFormat::CompressedTensors),
  };
  return table;
}

const Output& find_output(const std::string& name) {
  for (const Output& o : outputs())
    if (o.name == name) return o;
  fail("unknown output format '{}' (valid: {})", name, fmt::join(quantized_output_names(), ", "));
}

}  // namespace

std::vector<std::string> quantized_output_names() {
  std::vector<std::string> out;
  for (const Output& o : outputs()) out.push_back(o.name);
  return out;
}

bool is_quantized_output(const std::string& name) {
  for (const Output& o : outputs())
    if (o.name == name) return true;
  return false;
}

quant::Scheme scheme_for_output(const std::string& format, const quant::Scheme& scheme) {
  const quant::Scheme s = find_output(format).adapt(scheme);
  if (!(s == scheme))
    fmt::print(stderr, "qforge: note: --format {} stores {} instead of {}\n", format, s.to_string(), scheme.to_string());
  return s;
}

void write_quantized_output(const std::string& format, const std::string& out, const model::QuantizedModel& qm,
                            const tokenizer::Vocab& vocab, const std::string& source) {
  find_output(format).write(out, qm, vocab, source);
}

}  // namespace qf::cli
