// Helpers for the tokenizer tests: shared reference data (checked against
// SHA256SUMS before use), text corpora, scratch folders.
#pragma once

#include <gtest/gtest.h>

#include "file_text.h"
#include "shared_data.h"
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace qf::tokenizer::testing {

inline std::string shared_data() { return QF_SHARED_DATA; }

// Output of a shell command (stdout), or "" if it could not run.
inline std::string run_command(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// "" when every file (relative to the shared data folder) exists and matches
// SHA256SUMS; otherwise why not. Absent files skip; a changed file fails.
inline std::string check_shared_files(const std::vector<std::string>& relative, bool* corrupt) {
  *corrupt = false;
  for (const auto& rel : relative) {
    if (!::qf::test::shared_data_exists(rel)) return "shared data file " + ::qf::test::shared_data_path(rel) + " is absent";
  }
  static std::map<std::string, std::string> verified;  // path -> "" (ok) or the problem; hashing costs time
  for (const auto& rel : relative) {
    auto it = verified.find(rel);
    if (it == verified.end()) it = verified.emplace(rel, ::qf::test::shared_data_checksum_problem(rel)).first;
    if (!it->second.empty()) {
      *corrupt = true;
      return it->second;
    }
  }
  return {};
}

// Skips the test when the files are absent, fails it when they changed.
#define QF_REQUIRE_SHARED(...)                                                       \
  do {                                                                               \
    bool qf_corrupt_ = false;                                                        \
    const std::string qf_why_ =                                                      \
        ::qf::tokenizer::testing::check_shared_files({__VA_ARGS__}, &qf_corrupt_);   \
    if (qf_corrupt_) FAIL() << qf_why_;                                              \
    if (!qf_why_.empty()) GTEST_SKIP() << qf_why_;                                   \
  } while (0)

// Appended in place: GCC 12 warns falsely (-Warray-bounds) on a + "/" + b here
// once this header shares a translation unit with others (unity builds).
inline std::string data_path(const std::string& rel) {
  std::string path = shared_data();
  path += '/';
  path += rel;
  return path;
}

using ::qf::test::read_file;  // tests/support/file_text.h

// Lines of a text file (without '\n'), optionally only non-empty ones, at most `limit`.
inline std::vector<std::string> read_lines(const std::string& path, bool non_empty, size_t limit = SIZE_MAX,
                                           size_t skip = 0) {
  std::vector<std::string> out;
  std::istringstream in(read_file(path));
  size_t seen = 0;
  for (std::string line; out.size() < limit && std::getline(in, line);) {
    if (non_empty && line.empty()) continue;
    if (seen++ < skip) continue;
    out.push_back(line);
  }
  return out;
}

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("qf_tok_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(file(name), std::ios::binary) << content;
    return file(name);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Strings that stress whitespace, digits, punctuation and non-ASCII handling.
inline std::vector<std::string> tricky_strings() {
  return {
      "Hello world",
      " Hello",
      "Hello, world!",
      "  leading spaces",
      "trailing spaces   ",
      "multiple   spaces  inside",
      "   ",
      " ",
      "a",
      "\n",
      "line one\nline two\n\nline four",
      "tabs\tand\tnewlines\r\n",
      "12345 67890 3.14159 1,000,000",
      "I'm you're we've they'll he'd it's don't CAN'T",
      "caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xC3\x9C" "ber",
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88",  // Japanese
      "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\xE7\xAC\xA6",                                                  // Chinese
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x8E\x89 end",
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80",  // Russian
      "\xCE\x93\xCE\xB5\xCE\xB9\xCE\xB1 \xCF\x83\xCE\xBF\xCF\x85",                  // Greek
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7",                                  // Arabic
      "\xE2\x96\x81" "already\xE2\x96\x81" "escaped",                                  // U+2581 in input
      "<s> </s> <unk> <0x41> <|endoftext|>",
      "!!!??? ... --- ***",
      "x\xC2\xA0y\xE2\x80\x83z",  // no-break space, em space
      "MiXeD CaSe 123abc abc123",
      "email@example.com https://example.org/path?q=1",
      "\xC2\xBD \xE2\x85\xA2 \xC2\xB2",  // vulgar fraction, roman numeral, superscript
  };
}

}  // namespace qf::tokenizer::testing
