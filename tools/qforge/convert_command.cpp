#include "convert_command.h"

#include <fmt/format.h>

#include <string>

#include "core/error.h"
#include "formats/gguf_grid.h"
#include "formats/gguf_model.h"
#include "formats/gguf_recipe.h"
#include "model/model.h"
#include "model/quantized_checkpoint.h"
#include "model/save.h"

namespace qf::cli {
namespace {

struct ConvertOptions {
  std::string input;
  std::string output;
  std::string dtype = "f32";
};

DType parse_dtype(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  fail("unknown output dtype '{}' (valid: f32, f16, bf16, and for .gguf output a llama.cpp mixture: {})", s,
       fmt::join(formats::gguf_recipe_names(), ", "));
}

// A qforge quantized folder to GGUF: layers whose scheme is a ggml block
// grid (int4:g32:full:f16scale = Q4_0, int5:g32:full:f16scale = Q5_0,
// int8:g32:f16scale = Q8_0) keep their codes as blocks; the others are
// written dequantized in `dtype`.
void quantized_folder_to_gguf(const ConvertOptions& opt, DType dtype, const tokenizer::Vocab& vocab) {
  const model::QuantizedModel qm = model::load_quantized_folder(opt.input);
  const model::Model m = model::dequantized_model(qm);
  formats::GgufModelWriteOptions o;
  o.dtype = dtype;
  std::optional<formats::GgmlType> only;
  bool mixed = false;
  for (const model::QuantizedLinear& ql : qm.linears) {
    auto blocks = formats::gguf_blocks_from_quantized(ql.weight);
    if (!blocks) {
      fmt::print(stderr, "notice: {} ({}) has no GGUF block twin; written dequantized as {}\n", ql.name,
                 ql.weight.scheme.to_string(), opt.dtype);
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

void run_convert(const ConvertOptions& opt) {
  const bool to_gguf = opt.output.ends_with(".gguf");
  const bool recipe = opt.dtype != "f32" && opt.dtype != "f16" && opt.dtype != "bf16";
  QF_CHECK(!recipe || to_gguf, "--dtype {} is a GGUF mixture: the output must be OUT.gguf", opt.dtype);
  const DType dtype = recipe ? DType::F16 : parse_dtype(opt.dtype);
  const tokenizer::Vocab vocab = model::load_vocab(opt.input);
  if (to_gguf && !recipe && model::is_qforge_quantized(opt.input)) return quantized_folder_to_gguf(opt, dtype, vocab);
  const model::Model m = model::load_model(opt.input);
  if (to_gguf) {
    const auto tensors = m.named_tensors();  // HF names, rotate_half q/k: the writer permutes for llama.cpp
    formats::GgufModelWriteOptions o;
    o.dtype = dtype;
    if (recipe) o.recipe = formats::parse_gguf_recipe(opt.dtype);
    formats::write_gguf_model(opt.output, m.config, tensors, &vocab, o);
  } else {
    model::save_hf_folder(opt.output, m, vocab, opt.input, dtype);
  }
  fmt::print(stderr, "wrote {} ({} parameters, matrices as {})\n", opt.output, m.parameter_count(), opt.dtype);
}

}  // namespace

void register_convert(CLI::App& app) {
  auto opt = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert",
      "Convert a model between llama2.c, Hugging Face (safetensors + config.json + tokenizer), qforge quantized "
      "folders and GGUF (plain or quantized)");
  cmd->add_option("input", opt->input, "model: Hugging Face folder, safetensors with config.json, llama2.c .bin, GGUF")
      ->required();
  cmd->add_option("output", opt->output, "OUT.gguf for GGUF, otherwise a folder for Hugging Face safetensors")
      ->required();
  cmd->add_option("--dtype", opt->dtype,
                  "storage type of matrices: f32, f16, bf16 (vectors stay f32); for OUT.gguf also a llama.cpp "
                  "mixture: q4_k_m, q5_k_m, q3_k_m, q2_k, q6_k, q8_0, q4_0, q4_1, q5_0, q5_1, ...");
  cmd->callback([opt] { run_convert(*opt); });
}

}  // namespace qf::cli
