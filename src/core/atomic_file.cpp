#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"

namespace qf {

namespace {

// Six random characters for a temporary name: unpredictable and distinct
// across threads and processes (O_EXCL catches the rare collision).
std::string random_suffix() {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), static_cast<unsigned>(::getpid())};
    return std::mt19937_64(seq);
  }());
  std::string out(6, ' ');
  for (char& c : out) c = kChars[rng() % (sizeof kChars - 1)];
  return out;
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  QF_CHECK(!path_.empty(), "output path is empty");
  // Created with mode 0666 so the process umask applies exactly as for any
  // other new file; no umask() calls (they are process-wide and racy).
  for (int attempt = 0;; ++attempt) {
    temp_path_ = path_ + ".tmp." + random_suffix();
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) break;
    if (errno == EINTR || (errno == EEXIST && attempt < 100)) continue;
    fail("{}: cannot create temporary file: {}", path_, std::strerror(errno));
  }
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
  QF_CHECK(!failed_, "{}: write after an earlier write failed", path_);
  QF_CHECK(fd_ >= 0, "{}: write after commit", path_);
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      abandon();
      failed_ = true;
      fail("{}: write failed after {} bytes: {}", path_, written_, std::strerror(err));
    }
    p += n;
    size -= static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFileWriter::commit() {
  QF_CHECK(!failed_, "{}: cannot commit: an earlier write or commit failed", path_);
  QF_CHECK(fd_ >= 0, "{}: commit twice", path_);
  auto give_up = [&](const char* what, int err) {
    abandon();
    failed_ = true;
    fail("{}: {}: {}", path_, what, std::strerror(err));
  };
  if (::fsync(fd_) != 0) give_up("fsync failed", errno);
  if (::close(fd_) != 0) {
    const int err = errno;
    fd_ = -1;
    give_up("close failed", err);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    give_up("cannot rename temporary file into place", errno);
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
