#include <array>

#include "core/error.h"
#include "model/arch/families.h"

namespace qf::model {

namespace {
// Explicit, in one place: no static-initialisation order to reason about.
constexpr std::array<const Family*, 7> kFamilies{&kLlama, &kMistral, &kQwen2, &kQwen3, &kGemma3, &kPhi3, &kGpt2};
}  // namespace

std::span<const Family* const> families() { return kFamilies; }

const Family* find_family(std::string_view model_type) {
  for (const Family* f : kFamilies)
    if (f->model_type == model_type) return f;
  return nullptr;
}

std::string supported_model_types() {
  std::string s;
  for (const Family* f : kFamilies) s += (s.empty() ? "" : ", ") + std::string(f->model_type);
  return s;
}

const Family& family_of(const ModelConfig& c) {
  const Family* f = find_family(c.model_type);
  QF_CHECK(f, "unsupported model_type \"{}\" (supported: {})", c.model_type, supported_model_types());
  return *f;
}

const BlockSpec& block_spec(const ModelConfig& c) { return family_of(c).block; }

}  // namespace qf::model
