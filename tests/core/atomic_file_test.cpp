#include "core/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
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

}  // namespace
}  // namespace qf
