// The Python that runs the reference scripts (numpy) and the transformers
// judges: $QF_JUDGE_PYTHON, else the suite's venv (scripts/python-env.sh makes
// build/venv from the hash-pinned tests/judges/requirements.txt), else the
// system's python3. Empty when none can import what is asked.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace qf::test {

inline std::string python_with(const std::string& modules) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("QF_JUDGE_PYTHON"); env && *env) candidates.emplace_back(env);
  candidates.push_back(std::string(QF_SOURCE_DIR) + "/build/venv/bin/python");
  candidates.push_back("/usr/bin/python3");
  candidates.push_back("python3");
  for (const std::string& candidate : candidates) {
    const std::string probe = "'" + candidate + "' -c 'import " + modules + "' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) return candidate;
  }
  return std::string();
}

inline const std::string& numpy_python() {
  static const std::string found = python_with("numpy");
  return found;
}

// The python with torch and transformers (the judges of tests/runtime's
// TransformersReference), or empty.
inline const std::string& transformers_python() {
  static const std::string found = python_with("numpy, torch, transformers");
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
