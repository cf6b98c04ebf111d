// Helpers shared by the formats tests: scratch folders, hand-assembled
// checkpoint bytes (to build files no correct writer would produce) and
// error-message assertions.
#pragma once

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "error_of.h"

namespace qf::formats::testing {

using Bytes = std::vector<std::byte>;

using ::qf::test::TempDir;

inline void append(Bytes& out, const void* data, size_t n) {
  const auto* p = static_cast<const std::byte*>(data);
  out.insert(out.end(), p, p + n);
}

inline void append_u64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

// Safetensors bytes: little-endian header length, header text as given, data.
inline Bytes safetensors_bytes(std::string_view header, size_t data_bytes = 0) {
  Bytes out;
  append_u64(out, header.size());
  append(out, header.data(), header.size());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<std::byte>(i * 7 + 1));
  return out;
}

inline void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

inline Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Bytes out(chars.size());
  if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

using ::qf::test::expect_error;  // tests/support/error_of.h

}  // namespace qf::formats::testing
