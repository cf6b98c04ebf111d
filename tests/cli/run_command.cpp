#include "run_command.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "file_text.h"

namespace qf::test {

CommandResult run_qforge(const std::string& args) {
  static int counter = 0;
  const auto base = std::filesystem::temp_directory_path() /
                    ("qf_cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  const auto out = base.string() + ".out", err = base.string() + ".err";
  const std::string cmd = std::string(QF_QFORGE_BIN) + " " + args + " >" + out + " 2>" + err + " </dev/null";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  r.err = read_file(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

int count_lines(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  if (!text.empty() && text.back() != '\n') ++n;
  return n;
}

bool is_one_line(const std::string& text) { return count_lines(text) == 1 && text.back() == '\n'; }

void expect_one_line_error(const std::string& args, const std::string& needle) {
  const CommandResult r = run_qforge(args);
  EXPECT_NE(r.exit_code, 0) << args;
  EXPECT_TRUE(is_one_line(r.err)) << args << "\nstderr:\n" << r.err;
  EXPECT_NE(r.err.find("qforge: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
}

}  // namespace qf::test
