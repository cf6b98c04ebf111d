#include "formats/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

// dim 8, hidden 12, 1 layer, 2 heads, 2 kv heads, vocab 4, seq_len 2, no RoPE tables.
Bytes tiny_llama2c() {
  const int32_t header[7] = {8, 12, 1, 2, 2, 4, 2};
  const size_t floats = 32 + 8 + 4 * 64 + 8 + 3 * 96 + 8;
  // Sized once up front: GCC 12 at -O3 warns falsely about insert-then-resize.
  Bytes out(sizeof header + floats * 4, std::byte{0});
  std::memcpy(out.data(), header, sizeof header);
  return out;
}

void write_tiny_safetensors(const std::string& path) {
  const std::vector<NamedTensor> tensors = {{"w", Tensor::zeros(DType::BF16, {2, 2})}};
  write_safetensors(path, tensors, {{"format", "pt"}});
}

TEST(OpenCheckpoint, SafetensorsFileAndFolder) {
  TempDir dir;
  const auto path = dir.file("model.safetensors");
  write_tiny_safetensors(path);
  for (const std::string& p : {path, dir.path().string()}) {
    const Checkpoint ck = open_checkpoint(p);
    EXPECT_EQ(ck.format, "safetensors");
    EXPECT_EQ(ck.path, path);
    ASSERT_EQ(ck.tensors.size(), 1u);
    EXPECT_EQ(ck.metadata.at("format"), "pt");
    ASSERT_NE(ck.find("w"), nullptr);
    EXPECT_EQ(ck.find("w")->tensor.dtype(), DType::BF16);
    EXPECT_EQ(ck.find("nope"), nullptr);
  }
}

TEST(OpenCheckpoint, Llama2cFileAndFolder) {
  TempDir dir;
  const auto path = dir.file("tiny.bin");
  write_bytes(path, tiny_llama2c());
  for (const std::string& p : {path, dir.path().string()}) {
    const Checkpoint ck = open_checkpoint(p);
    EXPECT_EQ(ck.format, "llama2c");
    EXPECT_EQ(ck.tensors.size(), 1u + 9 + 1);
    EXPECT_EQ(ck.metadata.at("dim"), "8");
    EXPECT_EQ(ck.metadata.at("n_kv_heads"), "2");
    EXPECT_EQ(ck.metadata.at("shared_classifier"), "true");
    ASSERT_NE(ck.find("model.layers.0.mlp.down_proj.weight"), nullptr);
    EXPECT_EQ(ck.find("model.layers.0.mlp.down_proj.weight")->tensor.shape(), (Shape{8, 12}));
  }
}

TEST(OpenCheckpoint, SniffsFilesWithoutKnownExtension) {
  TempDir dir;
  write_tiny_safetensors(dir.file("weights"));
  EXPECT_EQ(open_checkpoint(dir.file("weights")).format, "safetensors");
  write_bytes(dir.file("weights.dat"), tiny_llama2c());
  EXPECT_EQ(open_checkpoint(dir.file("weights.dat")).format, "llama2c");
}

TEST(OpenCheckpoint, UnrecognizedFile) {
  TempDir dir;
  const auto path = dir.file("notes.txt");
  write_bytes(path, Bytes(100, std::byte{'x'}));
  expect_error([&] { open_checkpoint(path); }, {path, "unrecognized checkpoint format"});
}

TEST(OpenCheckpoint, ExtensionDecidesWhichErrorIsReported) {
  TempDir dir;
  const auto path = dir.file("broken.safetensors");
  write_bytes(path, Bytes(4, std::byte{0}));
  expect_error([&] { open_checkpoint(path); }, {path, "shorter than the 8-byte"});
  const auto bin = dir.file("broken.bin");
  write_bytes(bin, Bytes(4, std::byte{0}));
  expect_error([&] { open_checkpoint(bin); }, {bin, "28-byte llama2.c header"});
}

TEST(OpenCheckpoint, FolderProblems) {
  TempDir dir;
  expect_error([&] { open_checkpoint(dir.path().string()); }, {dir.path().string(), "no checkpoint found"});
  write_bytes(dir.file("a.bin"), tiny_llama2c());
  write_bytes(dir.file("b.bin"), tiny_llama2c());
  expect_error([&] { open_checkpoint(dir.path().string()); }, {"holds 2 llama2.c checkpoints", "a.bin", "b.bin"});
  expect_error([&] { open_checkpoint(dir.file("missing")); }, {"missing", "no such file or folder"});
}

TEST(OpenCheckpoint, FolderWithTokenizerBeside) {
  TempDir dir;
  write_bytes(dir.file("model.bin"), tiny_llama2c());
  write_bytes(dir.file("tok512.bin"), Bytes(100, std::byte{3}));
  EXPECT_EQ(open_checkpoint(dir.path().string()).path, dir.file("model.bin"));
  std::filesystem::remove(dir.file("model.bin"));
  write_bytes(dir.file("other.bin"), Bytes(64, std::byte{5}));
  expect_error([&] { open_checkpoint(dir.path().string()); }, {"holds 0 llama2.c checkpoints"});
}

TEST(OpenCheckpoint, Stories260KFileAndFolder) {
  const std::string folder = QF_SHARED_DATA "/stories260K";
  const std::string path = folder + "/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  for (const auto& p : {path, folder}) {
    const Checkpoint ck = open_checkpoint(p);
    EXPECT_EQ(ck.path, path);  // tok512.bin in the folder is not mistaken for a model
    EXPECT_EQ(ck.format, "llama2c");
    EXPECT_EQ(ck.metadata.at("vocab_size"), "512");
    EXPECT_EQ(ck.tensors.size(), 47u);
  }
}

}  // namespace
}  // namespace qf::formats
