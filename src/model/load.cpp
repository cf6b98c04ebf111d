// load_model: from a checkpoint path to a runtime-ready Model.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/gguf_model.h"
#include "formats/llama2c.h"
#include "formats/strict_json.h"
#include "model/arch/fused_projections.h"
#include "model/gguf_packing.h"
#include "model/linear_layers.h"
#include "model/model.h"
#include "model/packed_weights.h"
#include "model/quantized_checkpoint.h"
#include "model/quantized_formats.h"
#include "tokenizer/load.h"

namespace qf::model {
namespace {

namespace fs = std::filesystem;

ModelConfig read_config_json(const fs::path& file) {
  const std::string name = file.string();
  const nlohmann::ordered_json parsed = formats::read_strict_json_file(name);
  // from_hf_json takes the unordered flavour; key order carries no meaning here.
  return ModelConfig::from_hf_json(nlohmann::json::parse(parsed.dump()), name);
}

// llama2.c q/k rows become rotate_half rows; the rest is taken as is.
Model from_llama2c(const std::string& path) {
  formats::Llama2cModel l = formats::read_llama2c(path);
  ModelConfig config = ModelConfig::from_llama2c(l.config);
  with_context(path, [&] { config.validate(""); });
  for (auto& nt : l.tensors) {
    const bool q = nt.name.ends_with(".self_attn.q_proj.weight");
    const bool k = nt.name.ends_with(".self_attn.k_proj.weight");
    if (q || k) nt.tensor = interleaved_to_half_rope_rows(nt.tensor, q ? config.n_heads : config.n_kv_heads);
  }
  return build_model(std::move(config), l.tensors, path);
}

// A GGUF model whose block-quantized linear layers (and untied output head)
// go from their blocks straight into the kernels' layout (gguf_packing.h:
// Q4_0, Q4_1, Q8_0, Q2_K, Q3_K, Q4_K, Q6_K); 5-bit types, which have no
// kernel, are dequantized with one notice. The embedding table is packed as
// well when its type has a layout (a tied head then shares it).
Model packed_gguf_model(const std::string& path) {
  static constexpr std::string_view kLinearSuffixes[] = {
      "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
      "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight",    "attn.c_attn.weight",
      "attn.c_proj.weight",      "mlp.c_fc.weight",         "mlp.c_proj.weight",       "self_attn.qkv_proj.weight",
      "mlp.gate_up_proj.weight"};
  formats::GgufModelReadOptions ro;
  std::vector<std::string> fallbacks;
  ro.keep_blocks = [&fallbacks](formats::GgmlType type, const std::string& hf_name) {
    // The embedding table too: its rows are looked up with dequantize_row
    // (ggml's values exactly), and a tied head then runs on the kernels.
    if (hf_name == "model.embed_tokens.weight" || hf_name.ends_with("wte.weight")) return gguf_kernels_support(type);
    bool linear = hf_name == "lm_head.weight";
    for (std::string_view suffix : kLinearSuffixes) linear = linear || hf_name.ends_with(suffix);
    if (linear && !gguf_kernels_support(type))
      fallbacks.push_back(fmt::format("{} ({})", hf_name, formats::ggml_type_name(type)));
    return linear && gguf_kernels_support(type);
  };
  formats::GgufModel g = formats::read_gguf_model(path, ro);
  if (!fallbacks.empty())
    fmt::print(stderr, "note: {}: {} linear layer(s) have no integer kernel and run dequantized to f32, e.g. {}\n",
               path, fallbacks.size(), fallbacks.front());
  // Packed weights are named without GPT-2's "transformer." prefix (build_model's
  // `external`), and fused projections (Phi-3's attn_qkv) as their parts: block
  // rows split like float rows.
  std::map<std::string, formats::GgufBlocks> packed;
  for (auto& [name, blocks] : g.blocks) {
    const std::vector<formats::NamedTensor> one{{name, blocks.rows}};
    for (const formats::NamedTensor& part : split_fused_projections(g.config, one))
      packed.emplace(part.name.starts_with("transformer.") ? part.name.substr(12) : part.name,
                     formats::GgufBlocks{blocks.type, part.tensor});
  }
  std::set<std::string> external;
  for (const auto& entry : packed) external.insert(entry.first);
  Model m = build_model(std::move(g.config), g.tensors, path, external);
  for (const char* name : {"model.embed_tokens.weight", "wte.weight"}) {
    const auto embed = packed.find(name);
    if (embed == packed.end()) continue;
    m.embed_packed = pack_gguf_blocks(embed->second, m.config.hidden_size);
    if (m.config.tie_embeddings) m.lm_head_packed = m.embed_packed;  // one table, held once
    packed.erase(embed);
  }
  if (const auto head = packed.find("lm_head.weight"); head != packed.end()) {
    m.lm_head_packed = pack_gguf_blocks(head->second, m.config.hidden_size);
    packed.erase(head);
  }
  for (const LinearLayer& l : all_linears(m.config)) {
    const auto it = packed.find(l.name + ".weight");
    if (it == packed.end()) continue;
    m.layers[static_cast<size_t>(l.layer)].packed[static_cast<size_t>(l.kind)] = pack_gguf_blocks(it->second, l.in_features);
    packed.erase(it);
  }
  QF_CHECK(packed.empty(), "{}: block tensor {} is not a linear layer of this model", path, packed.begin()->first);
  return m;
}

}  // namespace

bool is_gguf_file(const std::filesystem::path& p) {
  if (p.extension() == ".gguf") return true;
  std::ifstream in(p, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string_view(magic, 4) == "GGUF";
}

tokenizer::Vocab load_vocab(const std::string& path) {
  if (is_gguf_file(path)) {
    formats::GgufModel g = formats::read_gguf_model(path);
    QF_CHECK(g.vocab.has_value(), "{}: the GGUF file has no tokenizer.ggml.* keys", path);
    return std::move(*g.vocab);
  }
  return tokenizer::find_tokenizer(path);
}

Model load_model(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  QF_CHECK(!ec && fs::exists(status), "{}: no such file or folder", path);
  const fs::path p(path);
  const fs::path folder = fs::is_directory(status) ? p : p.parent_path();
  const fs::path config_file = (folder.empty() ? fs::path(".") : folder) / "config.json";
  const bool has_config = fs::is_regular_file(config_file, ec);

  if (!fs::is_directory(status) && p.extension() == ".bin") return from_llama2c(path);
  if (is_gguf_file(p)) {
    if (options.integer_kernels) return packed_gguf_model(path);
    formats::GgufModel g = formats::read_gguf_model(path);  // q/k already back in rotate_half layout
    return build_model(std::move(g.config), g.tensors, path);
  }
  if (has_config) {
    // Every quantized layout (qforge, GPTQ, AWQ, compressed-tensors) arrives
    // as one QuantizedModel, so the integer kernels serve all of them.
    if (is_quantized_checkpoint(path)) {
      if (!options.integer_kernels) return dequantized_model(load_quantized(path));
      std::vector<std::string> fallbacks;
      Model m = packed_model(load_quantized(path), &fallbacks);
      if (!fallbacks.empty())
        fmt::print(stderr, "note: {}: {} linear layer(s) have no integer kernel and run dequantized to f32, e.g. {}\n",
                   path, fallbacks.size(), fallbacks.front());
      return m;
    }
    ModelConfig config = read_config_json(config_file);
    formats::Checkpoint ckpt = formats::open_checkpoint(path);
    QF_CHECK(ckpt.format != "llama2c",
             "{}: holds a llama2.c checkpoint ({}) beside a config.json; pass the .bin file itself", path,
             ckpt.path);
    return build_model(std::move(config), ckpt.tensors, ckpt.path);
  }
  formats::Checkpoint ckpt = formats::open_checkpoint(path);
  if (ckpt.format == "llama2c") return from_llama2c(ckpt.path);
  fail("{}: no config.json in {} (a Hugging Face checkpoint needs one to be run)", path,
       folder.empty() ? std::string(".") : folder.string());
}

}  // namespace qf::model
