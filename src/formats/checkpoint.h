// The one way the CLI opens a model: any supported checkpoint file or folder
// becomes a flat list of named tensors plus string metadata.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "formats/named_tensor.h"

namespace qf::formats {

struct Checkpoint {
  std::string path;
  std::string format;                           // "safetensors", "safetensors-sharded", "llama2c", "gguf"
  std::vector<NamedTensor> tensors;             // in file order (GGUF: GGUF names, row-major, as stored)
  // safetensors __metadata__, llama2c config as strings, or GGUF metadata as
  // text (GgufValue::to_string: arrays summarized).
  std::map<std::string, std::string> metadata;

  const NamedTensor* find(std::string_view name) const;
};

// `path` is a checkpoint file (format detected from its name, then its
// content; a GGUF file with quantized tensors is an error until those types
// are supported) or a folder holding model.safetensors, model.safetensors.index.json
// or a single llama2.c *.bin file. Throws qf::Error naming the path when
// nothing recognizable is found.
Checkpoint open_checkpoint(const std::string& path);

}  // namespace qf::formats
