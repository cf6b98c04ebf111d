#include "core/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace qf {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qf_atomic_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    return out;
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

TEST_F(AtomicFileTest, CommitReplacesTarget) {
  const auto target = (dir_ / "out.bin").string();
  std::ofstream(target) << "old";
  {
    AtomicFileWriter w(target);
    w.write("new ");
    w.write("content");
    EXPECT_EQ(slurp(target), "old");  // readers still see the old file
    w.commit();
  }
  EXPECT_EQ(slurp(target), "new content");
  EXPECT_EQ(files(), std::vector<std::string>{"out.bin"});
}

TEST_F(AtomicFileTest, AbandonedWriteLeavesNothing) {
  const auto target = (dir_ / "out.bin").string();
  try {
    AtomicFileWriter w(target);
    w.write("partial");
    throw std::runtime_error("job failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(files().empty());
}

TEST_F(AtomicFileTest, MissingDirectoryIsAClearError) {
  try {
    AtomicFileWriter w((dir_ / "no" / "such" / "out.bin").string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out.bin"), std::string::npos);
  }
}

// A full disk: RLIMIT_FSIZE makes write() fail with EFBIG the way ENOSPC would.
TEST_F(AtomicFileTest, FullDiskLeavesNoPartialFile) {
  const auto target = (dir_ / "big.bin").string();
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string message;
  try {
    AtomicFileWriter w(target);
    const std::vector<char> chunk(1024, 'x');
    for (int i = 0; i < 16; ++i) w.write(chunk.data(), chunk.size());
    w.commit();
  } catch (const Error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_TRUE(files().empty());
}

// After a failed write the writer says so, instead of "write after commit"
// or "commit twice".
TEST_F(AtomicFileTest, CallsAfterAFailedWriteNameTheEarlierFailure) {
  const auto target = (dir_ / "big.bin").string();
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string first, second, third;
  {
    AtomicFileWriter w(target);
    const std::vector<char> chunk(4096, 'x');
    try {
      w.write(chunk.data(), chunk.size());
    } catch (const Error& e) {
      first = e.what();
    }
    setrlimit(RLIMIT_FSIZE, &old);
    try {
      w.write("more");
    } catch (const Error& e) {
      second = e.what();
    }
    try {
      w.commit();
    } catch (const Error& e) {
      third = e.what();
    }
  }
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(first.find("write failed"), std::string::npos) << first;
  EXPECT_NE(second.find("an earlier write failed"), std::string::npos) << second;
  EXPECT_NE(third.find("an earlier write"), std::string::npos) << third;
  EXPECT_EQ(second.find("after commit"), std::string::npos) << second;
  EXPECT_EQ(third.find("twice"), std::string::npos) << third;
  EXPECT_TRUE(files().empty());
}

TEST_F(AtomicFileTest, CommitTwiceAndWriteAfterCommitStillSaySo) {
  const auto target = (dir_ / "out.bin").string();
  AtomicFileWriter w(target);
  w.write("x");
  w.commit();
  EXPECT_THROW(w.commit(), Error);
  try {
    w.write("y");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("after commit"), std::string::npos) << e.what();
  }
}

// The output gets 0666 minus the umask, as any new file would, without the
// writer touching the (process-wide) umask.
TEST_F(AtomicFileTest, PermissionsFollowTheUmask) {
  for (mode_t mask : {mode_t{022}, mode_t{077}, mode_t{002}}) {
    const mode_t old = ::umask(mask);
    const auto target = (dir_ / fmt::format("out{:o}", mask)).string();
    write_file_atomically(target, std::as_bytes(std::span("x", 1)));
    const mode_t now = ::umask(old);
    EXPECT_EQ(now, mask) << "the writer changed the umask";
    struct stat st {};
    ASSERT_EQ(::stat(target.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask) << std::oct << mask;
  }
}

TEST_F(AtomicFileTest, ConcurrentWritersUseDistinctTemporaries) {
  constexpr int kThreads = 8, kFiles = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; ++i) {
        const std::string content = fmt::format("{}/{}", t, i);
        write_file_atomically((dir_ / fmt::format("f{}_{}", t, i)).string(),
                              std::as_bytes(std::span(content.data(), content.size())));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(files().size(), static_cast<size_t>(kThreads * kFiles));
  EXPECT_EQ(slurp(dir_ / "f3_7"), "3/7");
}

}  // namespace
}  // namespace qf
