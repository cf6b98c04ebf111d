// The fuzzer's seed corpus must stay valid, or fuzzing starts from files the
// parser rejects in its first few bytes.
#include <gtest/gtest.h>

#include <filesystem>

#include "formats/safetensors.h"
#include "test_util.h"

namespace qf::formats {
namespace {

TEST(FuzzCorpus, EverySeedIsAValidSafetensorsFile) {
  const auto dir = std::filesystem::path(QF_SOURCE_DIR) / "fuzz" / "corpus" / "safetensors";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    // libFuzzer adds the inputs it finds (named by hash, no extension) to the
    // corpus folder; only the hand-made seeds must be valid.
    if (entry.path().extension() != ".safetensors") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(read_safetensors(entry.path().string()));
    ++seeds;
  }
  EXPECT_GE(seeds, 3);
}

}  // namespace
}  // namespace qf::formats
