#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace qf {

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  QF_CHECK(!path_.empty(), "output path is empty");
  temp_path_ = path_ + ".tmp.XXXXXX";
  fd_ = ::mkostemp(temp_path_.data(), O_CLOEXEC);
  if (fd_ < 0) fail("{}: cannot create temporary file: {}", path_, std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) abandon();
}

void AtomicFileWriter::abandon() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
  QF_CHECK(fd_ >= 0, "{}: write after commit", path_);
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      abandon();
      fail("{}: write failed after {} bytes: {}", path_, written_, std::strerror(err));
    }
    p += n;
    size -= static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFileWriter::commit() {
  QF_CHECK(fd_ >= 0, "{}: commit twice", path_);
  if (::fsync(fd_) != 0) {
    const int err = errno;
    abandon();
    fail("{}: fsync failed: {}", path_, std::strerror(err));
  }
  // mkstemp creates 0600; give the output the usual permissions.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd_, 0666 & ~mask);
  if (::close(fd_) != 0) {
    const int err = errno;
    fd_ = -1;
    abandon();
    fail("{}: close failed: {}", path_, std::strerror(err));
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    abandon();
    fail("{}: cannot rename temporary file into place: {}", path_, std::strerror(err));
  }
  committed_ = true;
  // Make the rename itself durable.
  const auto dir = std::filesystem::path(path_).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomically(const std::string& path, std::span<const std::byte> content) {
  AtomicFileWriter w(path);
  w.write(content);
  w.commit();
}

}  // namespace qf
