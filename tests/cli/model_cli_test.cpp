// eval, generate, convert and bench as a user runs them.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "run_command.h"
#include "shared_data.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class ModelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
    QF_REQUIRE_SHARED_DATA(kStoriesTextFile);
    QF_REQUIRE_SHARED_DATA("stories260K/tok512.model");
    model_ = shared_data_path(kStoriesModelFile);
    text_ = shared_data_path(kStoriesTextFile);
    dir_ = fs::temp_directory_path() / ("qf_model_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string model_, text_;
  fs::path dir_;
};

TEST_F(ModelCli, EvalLinesReproducesThePublishedPerplexity) {
  const auto r = run_qforge("eval " + model_ + " --text " + text_ + " --protocol lines --json -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["perplexity"].get<double>(), 5.25, 5.25 * 0.005);
  EXPECT_NEAR(j["tokens"].get<double>(), 9100, 100);
}

TEST_F(ModelCli, GreedyGenerationTellsTheDocumentedStory) {
  const auto r = run_qforge("generate " + model_ + " -n 40 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
                        0),
            0u)
      << r.out;
  // A seeded sample is reproducible.
  const auto a = run_qforge("generate " + model_ + " -p 'The cat' -n 30 --temp 0.9 --top-p 0.9 --seed 7");
  const auto b = run_qforge("generate " + model_ + " -p 'The cat' -n 30 --temp 0.9 --top-p 0.9 --seed 7");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST_F(ModelCli, ConvertedGgufScoresLikeTheOriginal) {
  const std::string gguf = (dir_ / "s.gguf").string();
  const auto c = run_qforge("convert " + model_ + " " + gguf);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const auto r = run_qforge("eval " + gguf + " --text " + text_ + " --protocol chunks --ctx 128 --max-windows 4 --baseline " +
                            model_ + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["baseline"]["kld_max"].get<double>(), 0.0);
  EXPECT_EQ(j["baseline"]["top1_agreement"].get<double>(), 1.0);
  const auto inspect = run_qforge("inspect " + gguf + " --json");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(nlohmann::json::parse(inspect.out)["params"], 260032);
}

TEST_F(ModelCli, BenchReportsEveryFigure) {
  const auto r = run_qforge("bench " + model_ + " --pp 32 --tg 8 -r 1 -t 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["triad_gbps"].get<double>(), 0.0);
  ASSERT_EQ(j["results"].size(), 1u);
  const auto& f32 = j["results"][0];
  EXPECT_EQ(f32["type"], "f32");
  for (const char* k : {"pp_tokens_per_s", "tg_tokens_per_s", "decode_weight_gbps", "bound_ratio"})
    EXPECT_GT(f32[k].get<double>(), 0.0) << k;
  EXPECT_EQ(f32["weight_bytes"].get<uint64_t>(), 260032u * 4);
  EXPECT_GT(f32["peak_rss_bytes"].get<uint64_t>(), f32["weight_bytes"].get<uint64_t>());
}

// --types quantizes in memory and runs each type on the integer kernels.
TEST_F(ModelCli, BenchComparesWeightTypes) {
  const auto r = run_qforge("bench " + model_ + " --types f32,int8,int4:g32,int2:g64:asym --pp 16 --tg 4 -r 1 -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 4u);
  std::vector<uint64_t> bytes;
  for (const auto& t : j["results"]) {
    EXPECT_GT(t["tg_tokens_per_s"].get<double>(), 0.0) << t["type"];
    bytes.push_back(t["decode_bytes_per_token"].get<uint64_t>());
  }
  EXPECT_GT(bytes[0], bytes[1]);  // f32 > int8 > int4 > int2 bytes per decode token
  EXPECT_GT(bytes[1], bytes[2]);
  EXPECT_GT(bytes[2], bytes[3]);
  EXPECT_FALSE(j["kernel_target"].get<std::string>().empty());
}

TEST_F(ModelCli, BadInputGivesOneClearLine) {
  expect_one_line_error("eval " + model_, "--text");
  expect_one_line_error("eval " + model_ + " --text /no/such.txt", "/no/such.txt");
  expect_one_line_error("eval " + model_ + " --text " + text_ + " --protocol sliding", "sliding");
  expect_one_line_error("eval /no/such/model --text " + text_, "/no/such/model");
  expect_one_line_error("eval " + model_ + " --text " + text_ + " --protocol chunks --ctx 100000", "chunk");
  expect_one_line_error("generate " + model_ + " --top-p 0", "top-p");
  expect_one_line_error("convert " + model_ + " " + (dir_ / "x").string() + " --dtype int3", "int3");
  expect_one_line_error("convert /no/such/model " + (dir_ / "y.gguf").string(), "/no/such/model");
  EXPECT_FALSE(fs::exists(dir_ / "y.gguf"));
  expect_one_line_error("bench --synthetic llama-3b", "llama-3b");
  expect_one_line_error("bench", "--synthetic");
  expect_one_line_error("bench " + model_ + " --types f32,nf4:g64", "nf4");
  expect_one_line_error("bench " + model_ + " --types int4:g48", "group size 48");
  expect_one_line_error("bench " + model_ + " --target neon", "neon");
  // An unknown architecture in config.json names it.
  fs::create_directories(dir_ / "weird");
  std::ofstream(dir_ / "weird" / "config.json") << R"({"model_type": "mamba", "vocab_size": 10})";
  std::ofstream(dir_ / "weird" / "model.safetensors") << "";
  expect_one_line_error("eval " + (dir_ / "weird").string() + " --text " + text_, "mamba");
}

}  // namespace
}  // namespace qf::test
