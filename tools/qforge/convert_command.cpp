#include "convert_command.h"

#include <fmt/format.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf_grid.h"
#include "formats/gguf_model.h"
#include "formats/gguf_recipe.h"
#include "model/model.h"
#include "model/quantized_checkpoint.h"
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

// A quantized checkpoint (any layout) to GGUF: layers whose scheme is a ggml
// block grid (int4:g32:full:f16scale = Q4_0, int5:g32:full:f16scale = Q5_0,
// int8:g32:f16scale = Q8_0) keep their codes as blocks; the others are
// written dequantized in `dtype`.
void quantized_to_gguf(const ConvertOptions& opt, DType dtype, const std::string& dtype_name,
                       const tokenizer::Vocab& vocab) {
  const model::QuantizedModel qm = model::load_quantized(opt.input);
  const model::Model m = model::dequantized_model(qm);
  model::require_no_online_transforms(m, "GGUF");
  formats::GgufModelWriteOptions o;
  o.dtype = dtype;
  std::optional<formats::GgmlType> only;
  bool mixed = false;
  for (const model::QuantizedLinear& ql : qm.linears) {
    auto blocks = formats::gguf_blocks_from_quantized(ql.weight);
    if (!blocks) {
      fmt::print(stderr, "notice: {} ({}) has no GGUF block twin; written dequantized as {}\n", ql.name,
                 ql.weight.scheme.to_string(), dtype_name);
      mixed = true;
      continue;
    }
    mixed = mixed || (only && *only != blocks->type);
    only = blocks->type;
    o.blocks[ql.name + ".weight"] = std::move(*blocks);
  }
  if (only && !mixed)
    if (const auto r = formats::gguf_recipe_for_type(*only)) o.file_type = r->file_type;
  const auto tensors = m.named_tensors();
  formats::write_gguf_model(opt.output, m.config, tensors, &vocab, o);
  fmt::print(stderr, "wrote {} ({} parameters, {} layers as GGUF blocks)\n", opt.output, m.parameter_count(),
             o.blocks.size());
}

// Float outputs: the model as loaded (quantized inputs dequantized), matrices as `dtype`.
void write_float(const ConvertOptions& opt, const std::string& dtype_name) {
  const DType dtype = parse_dtype(dtype_name);
  const tokenizer::Vocab vocab = model::load_vocab(opt.input);
  if (opt.output.ends_with(".gguf") && model::is_quantized_checkpoint(opt.input)) {
    quantized_to_gguf(opt, dtype, dtype_name, vocab);
    return;
  }
  const model::Model m = model::load_model(opt.input);
  if (opt.output.ends_with(".gguf")) {
    model::require_no_online_transforms(m, "GGUF");
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

// A llama.cpp mixture: the float (or dequantized) model encoded by ggml's encoders.
void write_gguf_mixture(const ConvertOptions& opt, const std::string& recipe) {
  QF_CHECK(opt.output.ends_with(".gguf"), "--to {} is a GGUF mixture: the output must be OUT.gguf", recipe);
  const model::Model m = model::load_model(opt.input);
  model::require_no_online_transforms(m, "GGUF");
  const auto tensors = m.named_tensors();
  formats::GgufModelWriteOptions o;
  o.dtype = DType::F16;  // matrices the mixture leaves unquantized
  o.recipe = formats::parse_gguf_recipe(recipe);
  const tokenizer::Vocab vocab = model::load_vocab(opt.input);
  formats::write_gguf_model(opt.output, m.config, tensors, &vocab, o);
  fmt::print(stderr, "wrote {} ({} parameters, GGUF {})\n", opt.output, m.parameter_count(), recipe);
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
  for (const std::string& recipe : formats::gguf_recipe_names())
    out.push_back({recipe, [recipe](const ConvertOptions& o) { write_gguf_mixture(o, recipe); }});
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
