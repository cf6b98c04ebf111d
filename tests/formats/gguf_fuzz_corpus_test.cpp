// The GGUF fuzzer's seed corpus must stay valid, or fuzzing starts from files
// the parser rejects in their first few bytes.
#include <gtest/gtest.h>

#include <filesystem>

#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "test_util.h"

namespace qf::formats {
namespace {

TEST(GgufFuzzCorpus, EverySeedIsAValidGgufFile) {
  const auto dir = std::filesystem::path(QF_SOURCE_DIR) / "fuzz" / "corpus" / "gguf";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    // libFuzzer adds the inputs it finds (named by hash) to the corpus
    // folder; only the hand-made seeds must be valid.
    if (entry.path().extension() != ".gguf") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW((void)read_gguf(entry.path().string()));
    // The model seeds reach the model mapping (names, shapes, layouts).
    if (entry.path().filename().string().starts_with("model_")) {
      EXPECT_NO_THROW((void)read_gguf_model(entry.path().string()));
    }
    ++seeds;
  }
  EXPECT_GE(seeds, 3);
}

}  // namespace
}  // namespace qf::formats
