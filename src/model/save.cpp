#include "model/save.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "formats/safetensors.h"
#include "model/arch/fused_projections.h"
#include "tokenizer/save.h"

namespace qf::model {
namespace fs = std::filesystem;

Tensor convert_for_storage(const Tensor& t, DType dtype) {
  QF_CHECK(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16,
           "output dtype must be F32, F16 or BF16, got {}", dtype_name(dtype));
  const DType want = t.ndim() >= 2 ? dtype : DType::F32;
  if (t.dtype() == want) return t;
  return t.to_f32().cast(want);
}

namespace {

void copy_atomically(const fs::path& from, const fs::path& to) {
  std::ifstream in(from, std::ios::binary);
  QF_CHECK(in.good(), "{}: cannot open", from.string());
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  write_file_atomically(to.string(), std::as_bytes(std::span(bytes)));
}

// Copies the tokenizer files found beside `source`; returns false when none.
bool copy_tokenizer_files(const fs::path& source, const fs::path& dir) {
  const fs::path folder = fs::is_directory(source) ? source : source.parent_path();
  bool copied = false;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "encoder.json", "vocab.bpe",
                           "special_tokens_map.json", "generation_config.json"}) {
    if (fs::is_regular_file(folder / name)) {
      copy_atomically(folder / name, dir / name);
      copied = true;
    }
  }
  if (copied) return true;
  // llama2.c folders: tokNNN.model is a SentencePiece model; prefer it to tokNNN.bin.
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with("tok") && e.path().extension() == ".model") {
      copy_atomically(e.path(), dir / "tokenizer.model");
      return true;
    }
  }
  return false;
}

}  // namespace

void create_output_folder(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  QF_CHECK(!ec, "{}: cannot create the output folder: {}", dir, ec.message());
}

void write_config_json(const std::string& dir, const nlohmann::json& config) {
  const std::string text = config.dump(2) + "\n";
  write_file_atomically((fs::path(dir) / "config.json").string(), std::as_bytes(std::span(text)));
}

void write_tokenizer_files(const std::string& dir, const tokenizer::Vocab& vocab, const std::string& source) {
  if (!is_gguf_file(source) && copy_tokenizer_files(source, dir)) return;
  if (vocab.kind == tokenizer::VocabKind::ByteLevelBPE) {
    tokenizer::write_gpt2_bpe(dir, vocab);
  } else {
    tokenizer::write_sentencepiece_model((fs::path(dir) / "tokenizer.model").string(), vocab);
  }
}

void save_hf_folder(const std::string& dir, const Model& model, const tokenizer::Vocab& vocab,
                    const std::string& source, DType dtype) {
  require_no_online_transforms(model, "a float Hugging Face folder");
  create_output_folder(dir);
  // In the family's own layout (Phi-3's fused qkv_proj / gate_up_proj).
  std::vector<formats::NamedTensor> tensors = fuse_projections(model.config, model.named_tensors());
  for (auto& nt : tensors) nt.tensor = convert_for_storage(nt.tensor, dtype);
  formats::write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_config_json(dir, model.config.to_hf_json());
  write_tokenizer_files(dir, vocab, source);
}

}  // namespace qf::model
