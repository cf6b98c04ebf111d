#include "formats/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"

namespace qf::formats {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Checkpoint from_safetensors(const std::string& path, std::string format, SafetensorsContents c) {
  return Checkpoint{path, std::move(format), std::move(c.tensors), std::move(c.metadata)};
}

Checkpoint from_llama2c(const std::string& path, Llama2cModel m) {
  const Llama2cConfig& c = m.config;
  std::map<std::string, std::string> meta = {
      {"dim", std::to_string(c.dim)},
      {"hidden_dim", std::to_string(c.hidden_dim)},
      {"n_layers", std::to_string(c.n_layers)},
      {"n_heads", std::to_string(c.n_heads)},
      {"n_kv_heads", std::to_string(c.n_kv_heads)},
      {"vocab_size", std::to_string(c.vocab_size)},
      {"seq_len", std::to_string(c.seq_len)},
      {"shared_classifier", c.shared_classifier ? "true" : "false"},
  };
  return Checkpoint{path, "llama2c", std::move(m.tensors), std::move(meta)};
}

// GGUF: tensors under their GGUF names (row-major shapes, as stored), every
// metadata value as one line of text (arrays summarized).
Checkpoint from_gguf(const std::string& path, const GgufContents& c) {
  std::map<std::string, std::string> meta;
  for (const auto& [key, value] : c.metadata) meta.emplace(key, value.to_string());
  return Checkpoint{path, "gguf", c.named_tensors(), std::move(meta)};
}

// A safetensors file starts with a little-endian length that fits the file,
// followed by a JSON object.
bool looks_like_safetensors(std::span<const std::byte> b) {
  if (b.size() < 9) return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(b[i]);
  return n > 0 && n <= b.size() - 8 && static_cast<char>(b[8]) == '{';
}

Checkpoint open_file(const std::string& path) {
  if (ends_with(path, ".index.json"))
    return from_safetensors(path, "safetensors-sharded", read_safetensors_index(path));
  if (ends_with(path, ".safetensors")) return from_safetensors(path, "safetensors", read_safetensors(path));
  if (ends_with(path, ".bin")) return from_llama2c(path, read_llama2c(path));
  if (ends_with(path, ".gguf")) return from_gguf(path, read_gguf(path));
  // No telling extension: sniff the content, then parse with full checks.
  const auto file = MappedFile::open(path);
  if (looks_like_gguf(file->bytes())) return from_gguf(path, parse_gguf(file->bytes(), path, file));
  if (looks_like_safetensors(file->bytes()))
    return from_safetensors(path, "safetensors", parse_safetensors(file->bytes(), path, file));
  if (looks_like_llama2c(file->bytes())) return from_llama2c(path, parse_llama2c(file->bytes(), path, file));
  fail("{}: unrecognized checkpoint format (expected a safetensors file, a model.safetensors.index.json, "
       "a GGUF file or a llama2.c .bin file)",
       path);
}

Checkpoint open_folder(const std::string& path) {
  const fs::path dir(path);
  // The single-file checkpoint wins over an index, as in Hugging Face transformers.
  for (const char* name : {"model.safetensors", "model.safetensors.index.json"}) {
    std::error_code ec;
    if (fs::is_regular_file(dir / name, ec)) return open_file((dir / name).string());
  }
  std::vector<std::string> bins;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".bin" && entry.is_regular_file(ec)) bins.push_back(entry.path().string());
  }
  if (ec) fail("{}: cannot list folder: {}", path, ec.message());
  QF_CHECK(!bins.empty(),
           "{}: no checkpoint found (looked for model.safetensors, model.safetensors.index.json and a llama2.c "
           "*.bin file)",
           path);
  // llama2.c folders usually hold the tokenizer as a .bin too (tok512.bin);
  // only well-formed checkpoints count.
  if (bins.size() > 1) {
    std::erase_if(bins, [](const std::string& bin) { return !looks_like_llama2c(MappedFile::open(bin)->bytes()); });
    std::sort(bins.begin(), bins.end());
    QF_CHECK(bins.size() == 1, "{}: holds {} llama2.c checkpoints ({}); name the one to open", path, bins.size(),
             fmt::join(bins, ", "));
  }
  return open_file(bins.front());
}

}  // namespace

const NamedTensor* Checkpoint::find(std::string_view name) const {
  const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const NamedTensor& t) { return t.name == name; });
  return it == tensors.end() ? nullptr : &*it;
}

Checkpoint open_checkpoint(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail("{}: no such file or folder", path);
  return fs::is_directory(status) ? open_folder(path) : open_file(path);
}

}  // namespace qf::formats
