// llama.cpp's quantization mixtures ("ftypes"): which ggml type each tensor
// of a model gets for, say, Q4_K_M, as llama.cpp's llama_tensor_get_type
// (src/llama-quant.cpp) decides for dense (non-MoE, non-Falcon) models:
//   - quantized: 2-D tensors whose name ends in "weight", except norms and
//     position_embd (GPT-2's wpe stays float);
//   - output.weight (and token_embd.weight when the embeddings are tied) is
//     Q6_K, or Q8_0 for the Q8_0 mixture (Q8_0 too when its row length is not
//     a multiple of the base type's block);
//   - attn_v (and a fused attn_qkv): Q2_K -> Q3_K (Q4_K when n_heads /
//     n_kv_heads >= 4); Q3_K_M -> Q5_K in layers 0-1, else Q4_K; Q3_K_L ->
//     Q5_K; Q4_K_M and Q5_K_M -> Q6_K where use_more_bits(layer); Q4_K_S ->
//     Q5_K in layers 0-3;
//   - ffn_down: Q2_K -> Q3_K; Q3_K_M -> Q5_K below n_layers/16, else Q4_K;
//     Q3_K_L -> Q5_K; Q4_K_M and Q5_K_M -> Q6_K where use_more_bits(layer);
//     Q4_K_S -> Q5_K below n_layers/8; Q4_0/Q5_0 with importance weights ->
//     Q4_1/Q5_1 below n_layers/8;
//   - attn_output: Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K;
//   - everything else the mixture's base type.
//   use_more_bits(i) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2.
// A row length that is not a multiple of the chosen type's block falls back
// as llama.cpp does (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K ->
// Q8_0) and to F16 when that does not fit either; llama.cpp refuses (and
// leaves a broken file) for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 rows that are not a
// multiple of 32, where we fall back to F16 too. Every fallback comes with a
// one-line notice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "formats/gguf.h"

namespace qf::formats {

// llama.cpp's LLAMA_FTYPE values (general.file_type).
enum class GgufFileType : uint32_t {
  AllF32 = 0, MostlyF16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10, Q3_K_S = 11,
  Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18, MostlyBF16 = 32,
};

struct GgufRecipe {
  std::string name;  // "q4_k_m", as spelled on the command line
  GgufFileType file_type = GgufFileType::Q4_K_M;
  GgmlType base = GgmlType::Q4_K;  // the type of every tensor no rule singles out
};

// "q4_k_m" (case-insensitive): q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s,
// q4_k_m, q5_k_s, q5_k_m, q6_k, q8_0, q4_0, q4_1, q5_0, q5_1. Anything else
// is a qf::Error listing them.
GgufRecipe parse_gguf_recipe(std::string_view spec);
std::vector<std::string> gguf_recipe_names();
// The mixture whose base type is `type` alone (Q4_0 -> q4_0, Q6_K -> q6_k,
// Q4_K -> q4_k_s, ...), for files made of one block type.
std::optional<GgufRecipe> gguf_recipe_for_type(GgmlType type);

struct GgufRecipeContext {
  int64_t n_layers = 0;
  int64_t n_gqa = 1;  // n_heads / n_kv_heads
  bool tied_embeddings = false;
  bool has_importance = false;  // importance weights ("imatrix") are given
};

struct GgufTypeChoice {
  GgmlType type = GgmlType::F32;
  std::string notice;  // non-empty when the rules' type did not fit the row length
};

// The type of tensor `gguf_name` (row-major `shape`, rows along its last
// dimension), or nullopt for a tensor the mixture leaves as it is.
std::optional<GgufTypeChoice> gguf_recipe_type(const GgufRecipe& recipe, std::string_view gguf_name,
                                               const Shape& shape, const GgufRecipeContext& context);

}  // namespace qf::formats
