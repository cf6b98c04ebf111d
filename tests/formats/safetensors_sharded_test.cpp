#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "test_util.h"

namespace qf::formats {
namespace {

using namespace qf::formats::testing;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

Tensor f32(std::initializer_list<float> values) {
  return Tensor::from_f32(std::span<const float>(values.begin(), values.size()), {static_cast<int64_t>(values.size())});
}

class ShardedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::vector<NamedTensor> one = {{"a", f32({1, 2})}, {"b", f32({3})}};
    const std::vector<NamedTensor> two = {{"c", f32({4, 5, 6})}};
    write_safetensors(dir.file("model-00001-of-00002.safetensors"), one, {{"format", "pt"}});
    write_safetensors(dir.file("model-00002-of-00002.safetensors"), two, {{"format", "pt"}, {"extra", "x"}});
  }
  std::string index(const std::string& weight_map) {
    const auto path = dir.file("model.safetensors.index.json");
    write_text(path, R"({"metadata": {"total_size": 24}, "weight_map": )" + weight_map + "}");
    return path;
  }
  TempDir dir;
};

TEST_F(ShardedTest, TwoShardsFormOneCheckpoint) {
  const auto path = index(R"({"c": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors",
                              "b": "model-00001-of-00002.safetensors"})");
  const auto read = read_safetensors_index(path);
  ASSERT_EQ(read.tensors.size(), 3u);
  EXPECT_EQ(read.tensors[0].name, "a");
  EXPECT_EQ(read.tensors[1].name, "b");
  EXPECT_EQ(read.tensors[2].name, "c");
  EXPECT_EQ(read.tensors[2].tensor.to_f32_vector(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(read.metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"extra", "x"}}));

  const Checkpoint ck = open_checkpoint(dir.path().string());
  EXPECT_EQ(ck.format, "safetensors-sharded");
  ASSERT_NE(ck.find("b"), nullptr);
  EXPECT_EQ(ck.find("b")->tensor.to_f32_vector(), std::vector<float>{3});
}

TEST_F(ShardedTest, MappedTensorMissingFromItsShard) {
  const auto path = index(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                              "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"})");
  expect_error([&] { read_safetensors_index(path); }, {path, "\"d\"", "model-00002-of-00002", "no such tensor"});
}

TEST_F(ShardedTest, TensorInTheWrongShard) {
  const auto path = index(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
                              "c": "model-00002-of-00002.safetensors"})");
  expect_error([&] { read_safetensors_index(path); }, {"holds tensor \"b\"", "does not assign"});
}

TEST_F(ShardedTest, ShardTensorMissingFromTheIndex) {
  const auto path = index(R"({"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"})");
  expect_error([&] { read_safetensors_index(path); }, {"\"b\"", "does not assign"});
}

TEST_F(ShardedTest, MissingShardFile) {
  const auto path = index(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                              "c": "model-00003-of-00002.safetensors"})");
  expect_error([&] { read_safetensors_index(path); }, {"model-00003-of-00002.safetensors", "cannot open"});
}

TEST_F(ShardedTest, ShardOutsideTheFolder) {
  const auto path = index(R"({"a": "../model.safetensors"})");
  expect_error([&] { read_safetensors_index(path); }, {path, "\"../model.safetensors\"", "file name in the index's folder"});
}

TEST_F(ShardedTest, MalformedIndex) {
  expect_error([&] { read_safetensors_index(index(R"([])")); }, {"\"weight_map\" must be an object"});
  expect_error([&] { read_safetensors_index(index(R"({})")); }, {"\"weight_map\" is empty"});
  expect_error([&] { read_safetensors_index(index(R"({"a": 1})")); }, {"weight_map entry \"a\"", "got number"});
  expect_error(
      [&] {
        read_safetensors_index(index(R"({"a": "model-00001-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"})"));
      },
      {"duplicate key \"a\""});
  const auto path = dir.file("model.safetensors.index.json");
  write_text(path, R"({"metadata": {}})");
  expect_error([&] { read_safetensors_index(path); }, {path, "no \"weight_map\""});
  write_text(path, "not json");
  expect_error([&] { read_safetensors_index(path); }, {path, "invalid JSON"});
}

}  // namespace
}  // namespace qf::formats
