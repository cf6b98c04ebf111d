#include "shared_data.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace qf::test {
namespace {

std::string command_output(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(cmd.c_str(), "r"), ::pclose);
  if (!pipe) return {};
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
  return out;
}

}  // namespace

std::string shared_data_path(const std::string& relative) { return std::string(QF_SHARED_DATA) + "/" + relative; }

bool shared_data_exists(const std::string& relative) { return std::filesystem::exists(shared_data_path(relative)); }

std::string shared_data_checksum_problem(const std::string& relative) {
  std::ifstream sums(shared_data_path("SHA256SUMS"));
  if (!sums) return "cannot read " + shared_data_path("SHA256SUMS");
  std::string expected;
  for (std::string line; std::getline(sums, line);) {
    std::istringstream fields(line);
    std::string hash, name;
    fields >> hash >> name;
    if (!name.empty() && name[0] == '*') name.erase(0, 1);
    if (name == relative || name == "./" + relative) expected = hash;
  }
  if (expected.empty()) return relative + " has no entry in SHA256SUMS";
  // coreutils' sha256sum: no crypto library needed for a test-only check.
  const std::string actual = command_output("sha256sum '" + shared_data_path(relative) + "'").substr(0, 64);
  if (actual != expected)
    return shared_data_path(relative) + ": sha256 " + actual + " differs from SHA256SUMS " + expected;
  return {};
}

}  // namespace qf::test
