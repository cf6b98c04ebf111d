// The one error type of QuantForge. Messages name the file or tensor and
// what was expected, so the CLI can print them as a single line.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace qf {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Prefixes the message of any qf::Error escaping `fn` with `context`
// (for example the file name), so low-level code need not know it.
template <typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace qf

#define QF_CHECK(cond, ...)         \
  do {                              \
    if (!(cond)) ::qf::fail(__VA_ARGS__); \
  } while (0)
