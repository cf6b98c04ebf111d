// Writes a file so that readers only ever see the old file or the complete
// new one: data goes to a temporary file beside the target, is fsync'ed, and
// is renamed over the target on commit(). If the writer is destroyed without
// commit() (an exception, a full disk), the temporary file is removed.
// After a failed write() or commit() the writer is dead: later calls throw
// "an earlier write failed" rather than a misleading message. The file is
// created with mode 0666 minus the process umask, like any new file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace qf {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void write(std::span<const std::byte> b) { write(b.data(), b.size()); }
  uint64_t bytes_written() const { return written_; }
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  void abandon() noexcept;
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
  bool failed_ = false;  // a write or commit failed: the temporary file is gone
};

// Convenience: the whole content at once.
void write_file_atomically(const std::string& path, std::span<const std::byte> content);

}  // namespace qf
