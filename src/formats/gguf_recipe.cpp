#include "formats/gguf_recipe.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/error.h"

namespace qf::formats {
namespace {

using F = GgufFileType;
using Ggml = GgmlType;

struct Recipe {
  std::string_view name;
  F file_type;
  Ggml base;
};

constexpr Recipe kRecipes[] = {
    {"q2_k", F::Q2_K, Ggml::Q2_K},     {"q3_k_s", F::Q3_K_S, Ggml::Q3_K}, {"q3_k_m", F::Q3_K_M, Ggml::Q3_K},
    {"q3_k_l", F::Q3_K_L, Ggml::Q3_K}, {"q4_k_s", F::Q4_K_S, Ggml::Q4_K}, {"q4_k_m", F::Q4_K_M, Ggml::Q4_K},
    {"q5_k_s", F::Q5_K_S, Ggml::Q5_K}, {"q5_k_m", F::Q5_K_M, Ggml::Q5_K}, {"q6_k", F::Q6_K, Ggml::Q6_K},
    {"q8_0", F::Q8_0, Ggml::Q8_0},     {"q4_0", F::Q4_0, Ggml::Q4_0},     {"q4_1", F::Q4_1, Ggml::Q4_1},
    {"q5_0", F::Q5_0, Ggml::Q5_0},     {"q5_1", F::Q5_1, Ggml::Q5_1},
};

enum class Category { TokenEmbd, Output, AttnV, AttnOutput, FfnDown, Other };

Category category_of(std::string_view name) {
  if (name == "output.weight") return Category::Output;
  if (name == "token_embd.weight") return Category::TokenEmbd;
  // llama.cpp treats a fused qkv like attn_v (category_is_attn_v).
  if (name.find("attn_qkv.weight") != std::string_view::npos) return Category::AttnV;
  if (name.find("attn_v.weight") != std::string_view::npos) return Category::AttnV;
  if (name.find("attn_output.weight") != std::string_view::npos) return Category::AttnOutput;
  if (name.find("ffn_down") != std::string_view::npos) return Category::FfnDown;
  return Category::Other;
}

bool quantizable(std::string_view name, const Shape& shape) {
  return shape.size() >= 2 && name.ends_with("weight") && name.find("_norm.weight") == std::string_view::npos &&
         name != "position_embd.weight";
}

// "blk.12.ffn_down.weight" -> 12 (llama.cpp counts these tensors in file
// order, which for one tensor per block is the block number).
int64_t layer_of(std::string_view name) {
  if (!name.starts_with("blk.")) return 0;
  int64_t v = 0;
  for (size_t i = 4; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) v = v * 10 + (name[i] - '0');
  return v;
}

bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

uint32_t block_size(Ggml t) { return find_ggml_type(t)->block_size; }

Ggml by_rules(const GgufRecipe& r, Category c, int64_t layer, int64_t row, const GgufRecipeContext& ctx) {
  const F f = r.file_type;
  const int64_t n = ctx.n_layers;
  Ggml t = r.base;
  if (c == Category::Output || (ctx.tied_embeddings && c == Category::TokenEmbd)) {
    if (row % block_size(r.base) != 0) return Ggml::Q8_0;
    return r.base == Ggml::Q8_0 ? Ggml::Q8_0 : Ggml::Q6_K;
  }
  switch (c) {
    case Category::AttnV:
      if (f == F::Q2_K) t = ctx.n_gqa >= 4 ? Ggml::Q4_K : Ggml::Q3_K;
      else if (f == F::Q3_K_M) t = layer < 2 ? Ggml::Q5_K : Ggml::Q4_K;
      else if (f == F::Q3_K_L) t = Ggml::Q5_K;
      else if ((f == F::Q4_K_M || f == F::Q5_K_M) && use_more_bits(layer, n)) t = Ggml::Q6_K;
      else if (f == F::Q4_K_S && layer < 4) t = Ggml::Q5_K;
      break;
    case Category::FfnDown:
      if (f == F::Q2_K) t = Ggml::Q3_K;
      else if (f == F::Q3_K_M) t = layer < n / 16 ? Ggml::Q5_K : Ggml::Q4_K;
      else if (f == F::Q3_K_L) t = Ggml::Q5_K;
      else if (f == F::Q4_K_M && use_more_bits(layer, n)) t = Ggml::Q6_K;
      else if (f == F::Q5_K_M && use_more_bits(layer, n)) t = Ggml::Q6_K;
      else if (f == F::Q4_K_S && layer < n / 8) t = Ggml::Q5_K;
      else if ((f == F::Q4_0 || f == F::Q5_0) && ctx.has_importance && layer < n / 8)
        t = f == F::Q4_0 ? Ggml::Q4_1 : Ggml::Q5_1;
      break;
    case Category::AttnOutput:
      if (f == F::Q2_K) t = Ggml::Q3_K;
      else if (f == F::Q3_K_M) t = Ggml::Q4_K;
      else if (f == F::Q3_K_L) t = Ggml::Q5_K;
      break;
    default: break;
  }
  return t;
}

}  // namespace

GgufRecipe parse_gguf_recipe(std::string_view spec) {
  std::string lower(spec);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  for (const Recipe& e : kRecipes)
    if (e.name == lower) return {std::string(e.name), e.file_type, e.base};
  fail("unknown GGUF quantization '{}' (valid: {})", spec, fmt::join(gguf_recipe_names(), ", "));
}

std::vector<std::string> gguf_recipe_names() {
  std::vector<std::string> out;
  for (const Recipe& e : kRecipes) out.emplace_back(e.name);
  return out;
}

std::optional<GgufRecipe> gguf_recipe_for_type(GgmlType type) {
  for (const Recipe& e : kRecipes)
    if (e.base == type && (e.file_type != F::Q3_K_M && e.file_type != F::Q3_K_L && e.file_type != F::Q4_K_M &&
                           e.file_type != F::Q5_K_M))
      return GgufRecipe{std::string(e.name), e.file_type, e.base};
  return std::nullopt;
}

std::optional<GgufTypeChoice> gguf_recipe_type(const GgufRecipe& recipe, std::string_view gguf_name,
                                               const Shape& shape, const GgufRecipeContext& context) {
  if (!quantizable(gguf_name, shape)) return std::nullopt;
  const int64_t row = shape.back();
  const Ggml wanted = by_rules(recipe, category_of(gguf_name), layer_of(gguf_name), row, context);
  GgufTypeChoice out{wanted, {}};
  if (row % block_size(wanted) == 0) return out;
  Ggml fallback = Ggml::F16;
  switch (wanted) {
    case Ggml::Q2_K:
    case Ggml::Q3_K: fallback = Ggml::Q4_0; break;
    case Ggml::Q4_K: fallback = Ggml::Q5_0; break;
    case Ggml::Q5_K: fallback = Ggml::Q5_1; break;
    case Ggml::Q6_K: fallback = Ggml::Q8_0; break;
    default: break;
  }
  if (row % block_size(fallback) != 0) fallback = Ggml::F16;
  out.type = fallback;
  out.notice = fmt::format("{}: rows of {} are not a multiple of the {}-value {} block; using {}", gguf_name, row,
                           block_size(wanted), ggml_type_name(wanted), ggml_type_name(fallback));
  return out;
}

}  // namespace qf::formats
