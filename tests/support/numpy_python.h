// The python3 the numpy reference tests run: the Debian one first (pyenv
// shims may lack numpy). Empty when none can import numpy.
#pragma once

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

}  // namespace qf::test
