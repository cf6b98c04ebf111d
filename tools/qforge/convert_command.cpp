#include "convert_command.h"

#include <fmt/format.h>

#include <string>

#include "core/error.h"
#include "formats/gguf_model.h"
#include "model/model.h"
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
  fail("unknown output dtype '{}' (valid: f32, f16, bf16)", s);
}

void run_convert(const ConvertOptions& opt) {
  const DType dtype = parse_dtype(opt.dtype);
  const model::Model m = model::load_model(opt.input);
  const tokenizer::Vocab vocab = model::load_vocab(opt.input);
  if (opt.output.ends_with(".gguf")) {
    const auto tensors = m.named_tensors();  // HF names, rotate_half q/k: the writer permutes for llama.cpp
    formats::write_gguf_model(opt.output, m.config, tensors, &vocab, dtype);
  } else {
    model::save_hf_folder(opt.output, m, vocab, opt.input, dtype);
  }
  fmt::print(stderr, "wrote {} ({} parameters, matrices as {})\n", opt.output, m.parameter_count(), opt.dtype);
}

}  // namespace

void register_convert(CLI::App& app) {
  auto opt = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a model between llama2.c, Hugging Face (safetensors + config.json + tokenizer) and GGUF");
  cmd->add_option("input", opt->input, "model: Hugging Face folder, safetensors with config.json, llama2.c .bin, GGUF")
      ->required();
  cmd->add_option("output", opt->output, "OUT.gguf for GGUF, otherwise a folder for Hugging Face safetensors")
      ->required();
  cmd->add_option("--dtype", opt->dtype, "storage type of matrices: f32, f16, bf16 (vectors stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->callback([opt] { run_convert(*opt); });
}

}  // namespace qf::cli
