// Sharded safetensors checkpoints (model.safetensors.index.json).
#include <filesystem>
#include <set>
#include <string_view>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/safetensors.h"
#include "formats/strict_json.h"

namespace qf::formats {
namespace {

// Shards must sit beside the index: a name with a path in it could make a
// downloaded checkpoint read arbitrary files.
void check_shard_name(const std::string& tensor, const std::string& shard) {
  QF_CHECK(!shard.empty() && shard != "." && shard != ".." && shard.find('/') == std::string::npos &&
               shard.find('\\') == std::string::npos,
           "weight_map maps {} to {}; expected a file name in the index's folder", quote(tensor), quote(shard));
}

// shard file name -> the tensor names weight_map assigns to it
std::map<std::string, std::set<std::string>> parse_index(const MappedFile& file) {
  const std::string_view text(reinterpret_cast<const char*>(file.data()), file.size());
  const auto index = parse_strict_json(text);
  QF_CHECK(index.is_object(), "index must be a JSON object with a \"weight_map\", got {}", index.type_name());
  const auto it = index.find("weight_map");
  QF_CHECK(it != index.end(), "index has no \"weight_map\"");
  QF_CHECK(it->is_object(), "\"weight_map\" must be an object mapping tensor names to shard files, got {}",
           it->type_name());
  QF_CHECK(!it->empty(), "\"weight_map\" is empty");
  std::map<std::string, std::set<std::string>> shards;
  for (const auto& [name, shard] : it->items()) {
    QF_CHECK(shard.is_string(), "weight_map entry {} must be a shard file name, got {}", quote(name), shard.type_name());
    const auto& shard_name = shard.get_ref<const std::string&>();
    check_shard_name(name, shard_name);
    shards[shard_name].insert(name);
  }
  return shards;
}

}  // namespace

SafetensorsContents read_safetensors_index(const std::string& index_path) {
  const auto file = MappedFile::open(index_path);
  const auto shards = with_context(index_path, [&] { return parse_index(*file); });
  const auto folder = std::filesystem::path(index_path).parent_path();

  SafetensorsContents out;
  for (const auto& [shard, mapped] : shards) {
    SafetensorsContents part = read_safetensors((folder / shard).string());
    std::set<std::string_view> present;
    for (const auto& t : part.tensors) {
      QF_CHECK(mapped.count(t.name), "{}: shard {} holds tensor {}, which weight_map does not assign to it",
               index_path, quote(shard), quote(t.name));
      present.insert(t.name);
    }
    for (const auto& name : mapped)
      QF_CHECK(present.count(name), "{}: weight_map assigns tensor {} to shard {}, which has no such tensor",
               index_path, quote(name), quote(shard));
    for (auto& t : part.tensors) out.tensors.push_back(std::move(t));
    out.metadata.merge(part.metadata);  // the first shard's value wins on a conflict
  }
  return out;
}

}  // namespace qf::formats
