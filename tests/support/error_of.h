// The message of the qf::Error a call throws, for tests that assert on it.
#pragma once

#include <string>

#include "core/error.h"

namespace qf::test {

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no qf::Error thrown)";
}

}  // namespace qf::test
