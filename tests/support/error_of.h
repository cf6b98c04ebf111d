// Asserting on qf::Error messages: error_of returns the message a call
// throws; expect_error checks that it throws one containing every fragment.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

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

inline void expect_error(const std::function<void()>& fn, std::initializer_list<std::string_view> fragments) {
  try {
    fn();
    ADD_FAILURE() << "expected a qf::Error mentioning \"" << *fragments.begin() << "\", but nothing was thrown";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (auto f : fragments) EXPECT_NE(message.find(f), std::string::npos) << "\"" << f << "\" not in: " << message;
  }
}

}  // namespace qf::test
