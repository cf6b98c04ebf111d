// Access to the pinned reference data in ../shared/data for tests: paths, and
// a sha256 check against SHA256SUMS before a file is trusted.
#pragma once

#include <string>

namespace qf::test {

// The real model and evaluation text most tests use, relative to the shared data.
inline const std::string kStoriesModelFile = "stories260K/stories260K.bin";
inline const std::string kStoriesTextFile = "stories260K/tinystories_valid_sample_30KB.txt";

// QF_SHARED_DATA + "/" + relative.
std::string shared_data_path(const std::string& relative);
bool shared_data_exists(const std::string& relative);

// Empty when the file's sha256 equals its SHA256SUMS entry; otherwise a
// message saying what differs (missing entry, unreadable file, other hash).
std::string shared_data_checksum_problem(const std::string& relative);

}  // namespace qf::test

// Skips the test when the file is absent; fails it when its hash differs.
#define QF_REQUIRE_SHARED_DATA(relative)                                              \
  do {                                                                                \
    if (!::qf::test::shared_data_exists(relative))                                    \
      GTEST_SKIP() << ::qf::test::shared_data_path(relative) << " not present";       \
    const std::string qf_problem_ = ::qf::test::shared_data_checksum_problem(relative); \
    ASSERT_TRUE(qf_problem_.empty()) << qf_problem_;                                  \
  } while (0)
