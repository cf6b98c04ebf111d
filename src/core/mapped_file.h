// A read-only memory map of a whole file. Tensors viewing it hold a
// shared_ptr so the mapping outlives every view.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace qf {

class MappedFile {
 public:
  // Throws qf::Error naming the path if it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qf
