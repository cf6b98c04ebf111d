// A whole file as bytes, for tests that compare or parse what a command wrote.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace qf::test {

// The file's bytes; empty when it cannot be opened (the caller's assertion says what was expected).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace qf::test
