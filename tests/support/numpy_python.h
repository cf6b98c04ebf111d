// Running the numpy reference scripts: the python3 they run: the Debian one first (pyenv
// shims may lack numpy). Empty when none can import numpy.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace qf::test {

inline const std::string& numpy_python() {
  static const std::string found = [] {
    for (const char* candidate : {"/usr/bin/python3", "python3"}) {
      const std::string probe = std::string(candidate) + " -c 'import numpy' >/dev/null 2>&1";
      if (std::system(probe.c_str()) == 0) return std::string(candidate);
    }
    return std::string();
  }();
  return found;
}

struct ShellResult {
  int status = -1;     // pclose's status; 0 is success
  std::string output;  // stdout (and stderr where the command redirects it)
};

// Runs `command` through /bin/sh and collects what it prints.
inline ShellResult run_shell(const std::string& command) {
  ShellResult r;
  FILE* p = ::popen(command.c_str(), "r");
  char buf[256];
  while (p && std::fgets(buf, sizeof buf, p)) r.output += buf;
  r.status = p ? ::pclose(p) : -1;
  return r;
}

}  // namespace qf::test
