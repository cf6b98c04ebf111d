#include "convert_command.h"

#include <fmt/format.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf_model.h"
#include "model/model.h"
#include "model/quantized_formats.h"
#include "model/save.h"
#include "quantized_output.h"

namespace qf::cli {
namespace {

struct ConvertOptions {
  std::string input;
  std::string output;
  std::string dtype = "f32";
  std::string to;
};

DType parse_dtype(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  fail("unknown output dtype '{}' (valid: f32, f16, bf16)", s);
}

// Float outputs: the model as loaded (quantized inputs dequantized), matrices as `dtype`.
void write_float(const ConvertOptions& opt, const std::string& dtype_name) {
  const DType dtype = parse_dtype(dtype_name);
  const model::Model m = model::load_model(opt.input);
  const tokenizer::Vocab vocab = model::load_vocab(opt.input);
  if (opt.output.ends_with(".gguf")) {
    const auto tensors = m.named_tensors();  // HF names, rotate_half q/k: the writer permutes for llama.cpp
    formats::write_gguf_model(opt.output, m.config, tensors, &vocab, dtype);
  } else {
    model::save_hf_folder(opt.output, m, vocab, opt.input, dtype);
  }
  fmt::print(stderr, "wrote {} ({} parameters, matrices as {})\n", opt.output, m.parameter_count(), dtype_name);
}

// Quantized outputs: the codes and scales of a quantized input, in another layout.
void write_quantized(const ConvertOptions& opt, const std::string& format) {
  QF_CHECK(model::is_quantized_checkpoint(opt.input),
           "{} is not a quantized checkpoint; quantize it with `qforge quantize {} --format {} -o {}`", opt.input,
           opt.input, format, opt.output);
  const model::QuantizedModel qm = model::load_quantized(opt.input);
  write_quantized_output(format, opt.output, qm, model::load_vocab(opt.input), opt.input);
  fmt::print(stderr, "wrote {} ({} quantized layers, {})\n", opt.output, qm.linears.size(), format);
}

struct Target {
  std::string name;
  std::function<void(const ConvertOptions&)> run;
};

// One row per --to target; the quantized layouts come from quantized_output.h.
std::vector<Target> targets() {
  std::vector<Target> out;
  for (const char* dtype : {"f32", "f16", "bf16"})
    out.push_back({dtype, [dtype](const ConvertOptions& o) { write_float(o, dtype); }});
  for (const std::string& format : quantized_output_names())
    out.push_back({format, [format](const ConvertOptions& o) { write_quantized(o, format); }});
  return out;
}

std::vector<std::string> target_names() {
  std::vector<std::string> names;
  for (const Target& t : targets()) names.push_back(t.name);
  return names;
}

void run_convert(const ConvertOptions& opt) {
  const std::string to = opt.to.empty() ? opt.dtype : opt.to;
  for (const Target& t : targets()) {
    if (t.name != to) continue;
    t.run(opt);
    return;
  }
  fail("unknown --to target '{}' (valid: {})", to, fmt::join(target_names(), ", "));
}

}  // namespace

void register_convert(CLI::App& app) {
  auto opt = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert",
      "Convert a model between llama2.c, Hugging Face (safetensors + config.json + tokenizer), GGUF and the quantized "
      "layouts (qforge, GPTQ, AWQ, compressed-tensors)");
  cmd->add_option("input", opt->input,
                  "model: Hugging Face folder (float or quantized), safetensors with config.json, llama2.c .bin, GGUF")
      ->required();
  cmd->add_option("output", opt->output, "OUT.gguf for GGUF, otherwise a folder")->required();
  cmd->add_option("--dtype", opt->dtype, "storage type of matrices: f32, f16, bf16 (vectors stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->add_option("--to", opt->to,
                  "output: " + fmt::format("{}", fmt::join(target_names(), " | ")) +
                      " (f32/f16/bf16 as --dtype; a quantized layout keeps the input's codes and scales)")
      ->check(CLI::IsMember(target_names()));
  cmd->callback([opt] { run_convert(*opt); });
}

}  // namespace qf::cli
