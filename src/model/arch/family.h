// The model families QuantForge runs, one file each under model/arch/.
// A family says how its Hugging Face config.json reads and writes, which
// block it is made of (BlockSpec) and the names transformers gives it.
//
// Adding a family: a new model/arch/NAME.cpp defining `const Family kNAME`
// (declared below), one line in registry.cpp, and its tests (config round
// trip, transformers' logits on a tiny random model: tests/runtime).
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/arch/block_spec.h"
#include "model/config.h"

namespace qf::model {

// When transformers gives a linear layer a bias (and so loads one we write).
enum class BiasRule {
  Never,            // the module has bias=False (Mistral; Qwen2's o_proj)
  Always,           // bias=True whatever the config says (GPT-2; Qwen2's q/k/v)
  IfAttentionBias,  // config.json "attention_bias"
  IfMlpBias,        // config.json "mlp_bias"
};
struct BiasRules {
  BiasRule qkv = BiasRule::Never, o = BiasRule::Never, mlp = BiasRule::Never;
};

// A projection the family's checkpoints store fused (Phi-3's qkv_proj): its
// rows are its parts' rows, stacked in order (model/arch/fused_projections.h).
// PartRows: how many rows a part has, from the config.
enum class PartRows { QDim, KvDim, Intermediate };

struct ProjectionPart {
  std::string_view name;  // under "model.layers.N.", e.g. "self_attn.q_proj"
  PartRows rows;
};

struct FusedProjection {
  std::string_view name;  // under "model.layers.N.", e.g. "self_attn.qkv_proj"
  std::array<ProjectionPart, 3> parts;
  int n_parts = 0;
  std::span<const ProjectionPart> part_list() const { return {parts.data(), static_cast<size_t>(n_parts)}; }
};

struct Family {
  std::string_view model_type;       // config.json "model_type"
  std::string_view hf_architecture;  // config.json "architectures"[0], e.g. "Qwen3ForCausalLM"
  // llama.cpp's general.architecture for it ("" when llama.cpp has none);
  // formats/gguf_model.cpp holds the tensor names and metadata keys.
  std::string_view gguf_arch;
  // Tensor naming and orientation: Llama-style (model.layers.N.self_attn...)
  // or GPT-2 style (h.N.attn.c_attn, Conv1D).
  Architecture layout = Architecture::Llama;
  BlockSpec block;
  BiasRules biases;
  // Projections stored fused in the family's HF checkpoints and GGUF files.
  std::span<const FusedProjection> fused = {};
  // Reads the family's config.json into a ModelConfig (model_type and arch
  // set; validate() is run by the caller). Throws qf::Error for unsupported
  // settings, naming them.
  ModelConfig (*from_hf)(const nlohmann::json& j) = nullptr;
  // Writes the family's keys into `j` (a config transformers accepts).
  void (*to_hf)(const ModelConfig& c, nlohmann::json& j) = nullptr;
};

// Every family, in the order error messages list them.
std::span<const Family* const> families();
// The family of a model_type, or nullptr.
const Family* find_family(std::string_view model_type);
// The family of a config; throws qf::Error for an unknown model_type.
const Family& family_of(const ModelConfig& c);
// What a config's blocks are made of (family_of(c).block).
const BlockSpec& block_spec(const ModelConfig& c);
// "llama, mistral, qwen2, ..." for error messages.
std::string supported_model_types();

}  // namespace qf::model
