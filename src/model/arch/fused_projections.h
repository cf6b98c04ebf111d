// Projections a family's checkpoints store fused, like Phi-3's qkv_proj
// (q | k | v rows) and gate_up_proj (gate | up rows). A Model always holds
// the parts: every quantization method then treats q, k and v (gate and up)
// as the separate layers they are, no quantization group straddles two of
// them, and the runtime knows one block layout. The HF and GGUF readers split
// at load (zero-copy row views); the writers of those layouts fuse again.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <optional>

#include "formats/named_tensor.h"
#include "model/arch/family.h"

namespace qf::model {

// The family's fused projections (empty for most).
std::span<const FusedProjection> fused_projections(const ModelConfig& c);
int64_t part_rows(const ModelConfig& c, PartRows rows);

// Every "model.layers.N.<fused>.weight|bias" becomes its parts' tensors, in
// the fused tensor's place (row views sharing its bytes); the rest is kept.
// A fused tensor whose rows are not the parts' sum is a qf::Error naming it.
// Tensors whose rows are blocks (GGUF block rows, U8 [rows, bytes]) split
// the same way.
std::vector<formats::NamedTensor> split_fused_projections(const ModelConfig& c,
                                                          std::span<const formats::NamedTensor> tensors);
// The inverse: each layer's complete set of parts becomes one fused tensor
// (owning, parts stacked in order) in the first part's place. A layer with
// some parts but not all is a qf::Error naming the missing one.
std::vector<formats::NamedTensor> fuse_projections(const ModelConfig& c,
                                                   std::span<const formats::NamedTensor> tensors);

// "model.layers.3.self_attn.q_proj.weight" -> the fused tensor it belongs to
// ("model.layers.3.self_attn.qkv_proj.weight") and its first row there; or
// nullopt when the name is no part.
struct FusedLocation {
  std::string fused_name;
  int64_t first_row = 0;
  bool first_part = false;
  const FusedProjection* projection = nullptr;  // the family's entry it belongs to
};
std::optional<FusedLocation> fused_location(const ModelConfig& c, const std::string& part_name);

}  // namespace qf::model
