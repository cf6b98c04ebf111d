#include "model/arch/fused_projections.h"

#include <map>
#include <set>

#include <fmt/format.h>

#include "core/error.h"

namespace qf::model {
namespace {

constexpr std::string_view kLayerPrefix = "model.layers.";

// "model.layers.12.self_attn.qkv_proj.weight" -> (12, "self_attn.qkv_proj", ".weight").
struct LayerName {
  std::string layer;  // "12"
  std::string_view module, suffix;
};

std::optional<LayerName> parse(std::string_view name) {
  if (!name.starts_with(kLayerPrefix)) return std::nullopt;
  name.remove_prefix(kLayerPrefix.size());
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  LayerName out{std::string(name.substr(0, dot)), {}, {}};
  name.remove_prefix(dot + 1);
  for (std::string_view suffix : {".weight", ".bias"}) {
    if (name.ends_with(suffix)) {
      out.module = name.substr(0, name.size() - suffix.size());
      out.suffix = suffix;
      return out;
    }
  }
  return std::nullopt;
}

std::string full(const LayerName& n, std::string_view module) {
  return fmt::format("{}{}.{}{}", kLayerPrefix, n.layer, module, n.suffix);
}

}  // namespace

std::span<const FusedProjection> fused_projections(const ModelConfig& c) { return family_of(c).fused; }

int64_t part_rows(const ModelConfig& c, PartRows rows) {
  switch (rows) {
    case PartRows::QDim: return c.q_dim();
    case PartRows::KvDim: return c.kv_dim();
    case PartRows::Intermediate: return c.intermediate_size;
  }
  return 0;
}

std::vector<formats::NamedTensor> split_fused_projections(const ModelConfig& c,
                                                          std::span<const formats::NamedTensor> tensors) {
  const auto fused = fused_projections(c);
  std::vector<formats::NamedTensor> out;
  out.reserve(tensors.size());
  for (const formats::NamedTensor& nt : tensors) {
    const auto n = fused.empty() ? std::nullopt : parse(nt.name);
    const FusedProjection* f = nullptr;
    for (const FusedProjection& candidate : fused)
      if (n && n->module == candidate.name) f = &candidate;
    if (!f) {
      out.push_back(nt);
      continue;
    }
    int64_t rows = 0;
    for (const ProjectionPart& p : f->part_list()) rows += part_rows(c, p.rows);
    QF_CHECK(nt.tensor.ndim() >= 1 && nt.tensor.dim(0) == rows,
             "tensor \"{}\" has shape {}, expected {} rows (the {} parts stacked)", nt.name,
             shape_to_string(nt.tensor.shape()), rows, f->name);
    int64_t begin = 0;
    for (const ProjectionPart& p : f->part_list()) {
      const int64_t count = part_rows(c, p.rows);
      out.push_back({full(*n, p.name), nt.tensor.slice_rows(begin, count)});
      begin += count;
    }
  }
  return out;
}

std::optional<FusedLocation> fused_location(const ModelConfig& c, const std::string& part_name) {
  const auto n = parse(part_name);
  if (!n) return std::nullopt;
  for (const FusedProjection& f : fused_projections(c)) {
    int64_t row = 0;
    for (const ProjectionPart& p : f.part_list()) {
      if (n->module == p.name) return FusedLocation{full(*n, f.name), row, &p == &f.part_list().front(), &f};
      row += part_rows(c, p.rows);
    }
  }
  return std::nullopt;
}

std::vector<formats::NamedTensor> fuse_projections(const ModelConfig& c,
                                                   std::span<const formats::NamedTensor> tensors) {
  const auto fused = fused_projections(c);
  if (fused.empty()) return {tensors.begin(), tensors.end()};
  std::map<std::string, const Tensor*> by_name;
  for (const formats::NamedTensor& nt : tensors) by_name.emplace(nt.name, &nt.tensor);
  std::vector<formats::NamedTensor> out;
  std::set<std::string> consumed;
  for (const formats::NamedTensor& nt : tensors) {
    const auto loc = fused_location(c, nt.name);
    if (!loc) {
      out.push_back(nt);
      continue;
    }
    if (!loc->first_part) {  // written with the first part
      continue;
    }
    const LayerName n = *parse(nt.name);
    std::vector<Tensor> parts;
    for (const ProjectionPart& p : loc->projection->part_list()) {
      const auto it = by_name.find(full(n, p.name));
      QF_CHECK(it != by_name.end(), "{} has \"{}\" but not \"{}\": {} stores them fused as {}", c.model_type, nt.name,
               full(n, p.name), c.model_type, loc->fused_name);
      parts.push_back(*it->second);
      consumed.insert(it->first);
    }
    out.push_back({loc->fused_name, concat_rows(parts)});
  }
  for (const formats::NamedTensor& nt : tensors)
    QF_CHECK(!fused_location(c, nt.name) || consumed.count(nt.name),
             "{} has \"{}\" without the first part it is stored fused with ({})", c.model_type, nt.name,
             fused_location(c, nt.name)->fused_name);
  return out;
}

}  // namespace qf::model
