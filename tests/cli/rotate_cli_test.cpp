// qforge quantize / inspect --rotate as a user runs them: a rotated folder
// evaluates as it was made (the online transforms travel in it), inspect
// shows the kurtosis drop, and what cannot hold a rotation says so in one line.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

#include "run_command.h"
#include "shared_data.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class RotateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qf_rotate_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ifstream in(shared_data_path("stories260K/tinystories_valid_sample_30KB.txt"));
    std::ofstream out(dir_ / "text.txt");
    std::string line;
    for (int i = 0; i < 3 && std::getline(in, line); ++i) out << line << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// The largest ffn_hidden kurtosis of `inspect --calib --json`.
double ffn_hidden_kurtosis(const std::string& model_args, const std::string& text) {
  const auto r = run_qforge("inspect " + model_args + " --calib " + text + " --calib-samples 4 --calib-seqlen 64 --json -t 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  double worst = 0.0;
  for (const auto& e : nlohmann::json::parse(r.out))
    if (e.at("site") == "ffn_hidden") worst = std::max(worst, e.at("kurtosis").get<double>());
  return worst;
}

TEST_F(RotateCli, RotatedFolderEvaluatesAndShowsTheKurtosisDrop) {
  QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
  const std::string stories = shared_data_path(kStoriesModelFile), out = path("rot");
  const auto q = run_qforge("quantize " + stories + " -o " + out + " --weights int8:channel --rotate hadamard --seed 3 -t 1");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("rotation     hadamard (seed 3)"), std::string::npos) << q.out;
  std::ifstream cfg(out + "/config.json");
  const nlohmann::json config = nlohmann::json::parse(cfg);
  const auto& qc = config.at("quantization_config");
  EXPECT_EQ(qc.at("transforms").at("model.layers.0.ffn_hidden").at("hadamard_block"), 4);  // 172 = 43 * 4
  EXPECT_EQ(qc.at("transforms").at("model.layers.4.attn_out").at("hadamard_block"), 64);
  EXPECT_EQ(qc.at("rotation").at("seed"), 3);
  // int8 weights, float activations: the rotated model is the model.
  const auto e = run_qforge("eval " + out + " --text " + path("text.txt") + " --protocol lines --baseline " + stories +
                            " --json -t 1");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_LT(nlohmann::json::parse(e.out).at("baseline").at("kld_mean").get<double>(), 2e-3) << e.out;
  // inspect on the folder and inspect --rotate on the float model agree.
  const double before = ffn_hidden_kurtosis(stories, path("text.txt"));
  const double folder = ffn_hidden_kurtosis(out, path("text.txt"));
  const double rotated = ffn_hidden_kurtosis(stories + " --rotate hadamard --seed 3", path("text.txt"));
  EXPECT_GT(before, 10.0);
  EXPECT_LT(folder, 0.25 * before);
  EXPECT_NEAR(folder, rotated, 0.2);

  expect_one_line_error("convert " + out + " " + path("x.gguf") + " --to f16", "online Hadamard");
  expect_one_line_error("convert " + out + " " + path("g") + " --to gptq", "online Hadamard");
  expect_one_line_error("convert " + out + " " + path("f") + " --to f32", "online Hadamard");
}

TEST_F(RotateCli, BadInputGivesOneClearLine) {
  const std::string stories = shared_data_path(kStoriesModelFile);
  expect_one_line_error("quantize " + stories + " -o " + path("a") + " --rotate givens", "--rotate");
  expect_one_line_error("quantize " + stories + " -o " + path("a") + " --format gptq --rotate hadamard",
                        "online Hadamard");
  expect_one_line_error("quantize " + stories + " -o " + path("a.gguf") + " --format gguf --rotate hadamard",
                        "online Hadamard");
  expect_one_line_error("inspect " + stories + " --rotate hadamard", "--calib");
  expect_one_line_error("quantize " + stories + " -o " + path("a") + " --rotate-steps 5 --calib " + path("text.txt"),
                        "--rotate-steps");
  expect_one_line_error("quantize " + stories + " -o " + path("a") + " --rotate hadamard --rotate-steps 5", "--calib");
  expect_one_line_error("quantize " + stories + " -o " + path("a") + " --rotate hadamard --rotate-steps 5 --budget-bpw 4 "
                        "--method gptq --calib " + path("text.txt"), "--budget-bpw");
  expect_one_line_error("quantize " + stories + " -o " + path("a") + " --rotate hadamard --rotate-steps 5 --weights nf4 "
                        "--calib " + path("text.txt"), "nf4");
  EXPECT_FALSE(fs::exists(path("a")));
}

// --rotate-steps: the learned matrices go into the folder as dense online
// transforms, the folder says how they were learned, and it evaluates.
TEST_F(RotateCli, LearnedRotationTravelsInTheFolder) {
  QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
  const std::string stories = shared_data_path(kStoriesModelFile), out = path("learned");
  const auto q = run_qforge("quantize " + stories + " -o " + out + " --weights int4:g32 --acts int4 --rotate hadamard "
                            "--rotate-steps 10 --rotate-lr 0.2 --calib " + path("text.txt") +
                            " --calib-samples 4 --calib-seqlen 64 --seed 3 -t 1");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("learned      10 Cayley steps"), std::string::npos) << q.out;
  std::ifstream cfg(out + "/config.json");
  const auto qc = nlohmann::json::parse(cfg).at("quantization_config");
  EXPECT_EQ(qc.at("transforms").at("model.layers.0.ffn_hidden").at("hadamard_block"), 1);  // dense 172 x 172
  EXPECT_EQ(qc.at("rotation").at("learned").at("steps"), 10);
  EXPECT_LT(qc.at("rotation").at("learned").at("objective_learned").get<double>(),
            qc.at("rotation").at("learned").at("objective_random").get<double>());
  const auto e = run_qforge("eval " + out + " --text " + path("text.txt") + " --protocol lines --baseline " + stories +
                            " --json -t 1");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const double kld = nlohmann::json::parse(e.out).at("baseline").at("kld_mean").get<double>();
  EXPECT_GT(kld, 0.0);
  EXPECT_LT(kld, 1.0);
}

TEST_F(RotateCli, OfflineRotationExportsAsGptq) {
  QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
  const auto q = run_qforge("quantize " + shared_data_path(kStoriesModelFile) + " -o " + path("g") +
                            " --format gptq --weights int8:g32 --rotate hadamard-offline -t 1");
  EXPECT_EQ(q.exit_code, 0) << q.err;
}

}  // namespace
}  // namespace qf::test
