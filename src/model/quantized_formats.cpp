#include "model/quantized_formats.h"

#include <array>
#include <filesystem>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "model/awq_checkpoint.h"
#include "model/checkpoint_support.h"
#include "model/compressed_tensors_checkpoint.h"
#include "model/gptq_checkpoint.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;

// One row per layout: its name (CLI spelling and quant_method), reader and writer.
struct FormatEntry {
  QuantizedFormat format;
  const char* name;
  QuantizedModel (*load)(const std::string&);
  void (*save)(const std::string&, const QuantizedModel&, const tokenizer::Vocab&, const std::string&);
};

void save_gptq_v1(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                  const std::string& source) {
  save_gptq_folder(dir, qm, vocab, source);
}

constexpr std::array<FormatEntry, 4> kLayouts = {{
    {QuantizedFormat::Qforge, "qforge", load_quantized_folder, save_quantized_folder},
    {QuantizedFormat::Gptq, "gptq", load_gptq_folder, save_gptq_v1},
    {QuantizedFormat::Awq, "awq", load_awq_folder, save_awq_folder},
    {QuantizedFormat::CompressedTensors, "compressed-tensors", load_compressed_tensors_folder,
     save_compressed_tensors_folder},
}};

const FormatEntry& layout(QuantizedFormat f) {
  for (const FormatEntry& l : kLayouts)
    if (l.format == f) return l;
  fail("unknown quantized format {}", static_cast<int>(f));
}

bool has_autogptq_config(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(checkpoint_folder(path) / "quantize_config.json", ec);
}

}  // namespace

std::string_view quantized_format_name(QuantizedFormat f) { return layout(f).name; }

std::string quantized_format_names() {
  std::string out;
  for (const FormatEntry& l : kLayouts) out += (out.empty() ? "" : ", ") + std::string(l.name);
  return out;
}

QuantizedFormat parse_quantized_format(std::string_view name) {
  for (const FormatEntry& l : kLayouts)
    if (name == l.name) return l.format;
  fail("unknown quantized checkpoint format '{}' (valid: {})", name, quantized_format_names());
}

bool is_quantized_checkpoint(const std::string& path) {
  return quant_method_of(path).has_value() || has_autogptq_config(path);
}

std::optional<QuantizedFormat> detect_quantized_format(const std::string& path) {
  const std::optional<std::string> method = quant_method_of(path);
  if (!method) return has_autogptq_config(path) ? std::optional(QuantizedFormat::Gptq) : std::nullopt;
  const std::string config = (checkpoint_folder(path) / "config.json").string();
  QF_CHECK(!method->empty(), "{}: \"quantization_config\" must be an object with a string \"quant_method\"", config);
  for (const FormatEntry& l : kLayouts)
    if (*method == l.name) return l.format;
  fail("{}: quantization_config.quant_method \"{}\" is not supported (readable: {})", config, *method,
       quantized_format_names());
}

QuantizedModel load_quantized(const std::string& path) {
  const std::optional<QuantizedFormat> f = detect_quantized_format(path);
  QF_CHECK(f.has_value(), "{}: not a quantized checkpoint (no quantization_config in config.json)", path);
  return layout(*f).load(path);
}

void save_quantized(QuantizedFormat format, const std::string& dir, const QuantizedModel& qm,
                    const tokenizer::Vocab& vocab, const std::string& source) {
  if (format != QuantizedFormat::Qforge)
    require_no_online_transforms(qm.model, fmt::format("--format {}", quantized_format_name(format)));
  layout(format).save(dir, qm, vocab, source);
}

quant::Scheme scheme_for_format(QuantizedFormat format, const quant::Scheme& scheme) {
  // Checked before any quantization work, with the writers' own words.
  const bool is_int = scheme.format == quant::Format::Int;
  const std::string spec = scheme.to_string();
  switch (format) {
    case QuantizedFormat::Qforge: break;
    case QuantizedFormat::Gptq:
      QF_CHECK(is_int && (scheme.bits == 2 || scheme.bits == 3 || scheme.bits == 4 || scheme.bits == 8),
               "scheme {}: GPTQ checkpoints hold integer schemes only, of 2, 3, 4 or 8 bits", spec);
      break;
    case QuantizedFormat::Awq:
      QF_CHECK(is_int && scheme.bits == 4, "scheme {}: AWQ gemm checkpoints hold 4-bit integer schemes only", spec);
      break;
    case QuantizedFormat::CompressedTensors:
      QF_CHECK(is_int, "scheme {}: pack-quantized checkpoints hold integer schemes only", spec);
      break;
  }
  quant::Scheme s = scheme;
  const bool f16_only = format == QuantizedFormat::Gptq || format == QuantizedFormat::Awq;
  if (f16_only && s.format == quant::Format::Int && s.scale_format == quant::ScaleFormat::F32)
    s.scale_format = quant::ScaleFormat::F16;
  return s;
}

}  // namespace qf::model
