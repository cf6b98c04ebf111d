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

// Raw lines of `text`, empty ones included: the number of '\n', plus one
// for unterminated text after the last. "a\n\n" is 2 lines.
int count_lines(const std::string& text);

// Exactly one line, ending in '\n' ("a\n" yes; "a", "a\n\n", "a\nb\n" no).
bool is_one_line(const std::string& text);

// A bad invocation must fail with exactly one clear line on stderr that
// contains `needle` (and is not an internal error).
void expect_one_line_error(const std::string& args, const std::string& needle);

}  // namespace qf::test
