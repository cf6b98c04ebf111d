// Runs the qforge binary as a user would and captures what it printed.
#pragma once

#include <string>

namespace qf::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `args` is appended to the qforge path and run through /bin/sh.
CommandResult run_qforge(const std::string& args);

// Lines of `text` that are not empty.
int count_lines(const std::string& text);

}  // namespace qf::test
