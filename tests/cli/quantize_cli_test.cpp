// qforge quantize on the real stories260K model, as docs/results.md reports
// it (a smaller calibration set, to keep the suite fast): calibrate on the
// first half of the TinyStories lines, evaluate on the second half against the
// fp32 model, and check the orderings the methods' papers promise.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include "file_text.h"
#include "core/regex.h"
#include <sstream>
#include <string>

#include "run_command.h"
#include "shared_data.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class QuantizeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("qf_quantize_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  void SetUp() override {
    QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
    QF_REQUIRE_SHARED_DATA(kStoriesTextFile);
    QF_REQUIRE_SHARED_DATA("stories260K/tok512.model");
    model_ = shared_data_path(kStoriesModelFile);
    if (!fs::exists(dir_ / "calib.txt")) {
      // First half of the lines for calibration, second half for evaluation.
      std::istringstream all(read_file(shared_data_path(kStoriesTextFile)));
      std::vector<std::string> lines;
      for (std::string line; std::getline(all, line);) lines.push_back(line);
      std::ofstream calib(dir_ / "calib.txt", std::ios::binary), eval(dir_ / "eval.txt", std::ios::binary);
      for (size_t i = 0; i < lines.size(); ++i) (i < lines.size() / 2 ? calib : eval) << lines[i] << '\n';
    }
  }

  // Quantizes into dir_/name and returns qforge's stdout.
  std::string quantize(const std::string& name, const std::string& args) {
    const auto r = run_qforge("quantize " + model_ + " -o " + (dir_ / name).string() + " " + args + " --calib " +
                              (dir_ / "calib.txt").string() + " --calib-samples 16 --calib-seqlen 128 --seed 1 -t 2");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  // Mean KLD of dir_/name against the fp32 model on the held-out lines.
  double kld(const std::string& name) {
    const auto r = run_qforge("eval " + (dir_ / name).string() + " --text " + (dir_ / "eval.txt").string() +
                              " --protocol lines --baseline " + model_ + " --json -t 2");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return 1e9;
    return nlohmann::json::parse(r.out)["baseline"]["kld_mean"].get<double>();
  }

  static double bits_per_weight(const std::string& out) {
    std::smatch m;
    const std::regex re(R"(([0-9.]+) bits per weight)");
    return std::regex_search(out, m, re) ? std::stod(m[1]) : -1.0;
  }

  std::string model_;
  static fs::path dir_;
};
fs::path QuantizeCli::dir_;

TEST_F(QuantizeCli, Int8PerChannelRoundToNearestIsNearlyLossless) {
  const std::string out = quantize("rtn8", "--method rtn --weights int8:channel");
  EXPECT_LE(kld("rtn8"), 0.002);
  EXPECT_NEAR(bits_per_weight(out), 8.42, 0.01);
}

TEST_F(QuantizeCli, GptqAndAwqBeatRoundToNearestAtInt4) {
  quantize("rtn4", "--method rtn --weights int4:g32");
  quantize("gptq4", "--method gptq --weights int4:g32");
  quantize("awq4", "--method awq --weights int4:g32");
  const double rtn = kld("rtn4");
  EXPECT_LT(kld("gptq4"), rtn);
  EXPECT_LT(kld("awq4"), rtn);
}

TEST_F(QuantizeCli, GptqCutsTheErrorOfLowBitsByAThird) {
  for (const char* scheme : {"int3:g32:asym", "int2:g16:asym"}) {
    const std::string tag = std::regex_replace(scheme, std::regex(":"), "_");
    quantize("rtn_" + tag, std::string("--method rtn --weights ") + scheme);
    quantize("gptq_" + tag, std::string("--method gptq --weights ") + scheme);
    EXPECT_LE(kld("gptq_" + tag), 0.7 * kld("rtn_" + tag)) << scheme;
  }
}

TEST_F(QuantizeCli, SmoothQuantBeatsNaiveW8A8) {
  for (const char* mode : {"dynamic-token", "static-tensor"}) {
    const std::string m = mode;
    quantize("naive_" + m, "--method rtn --weights int8:channel --acts int8 --act-mode " + m);
    quantize("sq_" + m, "--method smoothquant --acts int8 --act-mode " + m);
    EXPECT_LT(kld("sq_" + m), kld("naive_" + m)) << mode;
  }
}

TEST_F(QuantizeCli, MixedPrecisionBeatsUniformInt3WithinItsBudget) {
  const std::string out = quantize("mp", "--method rtn --budget-bpw 3.5 --mp-samples 2");
  quantize("u3", "--method rtn --weights int3:g32:f16scale");
  EXPECT_LE(bits_per_weight(out), 3.5);
  EXPECT_GT(bits_per_weight(out), 3.3);
  EXPECT_NE(out.find("model.layers.4.mlp.down_proj"), std::string::npos) << "the assignment is printed";
  EXPECT_LT(kld("mp"), kld("u3"));
}

TEST_F(QuantizeCli, SameInputsAndSeedGiveAByteIdenticalFile) {
  quantize("det_a", "--method gptq --weights int4:g32 --act-order --bias-correction");
  quantize("det_b", "--method gptq --weights int4:g32 --act-order --bias-correction");
  for (const char* f : {"model.safetensors", "config.json"})
    EXPECT_EQ(read_file(dir_ / "det_a" / f), read_file(dir_ / "det_b" / f)) << f;
  const auto config = nlohmann::json::parse(read_file(dir_ / "det_a" / "config.json"));
  EXPECT_EQ(config["quantization_config"]["quant_method"], "qforge");
  EXPECT_EQ(config["quantization_config"]["layers"]["model.layers.0.self_attn.q_proj"]["scheme"], "int4:g32");
  // The quantized folder runs: greedy text comes out.
  const auto g = run_qforge("generate " + (dir_ / "det_a").string() + " -n 16 -t 1");
  EXPECT_EQ(g.exit_code, 0) << g.err;
  EXPECT_FALSE(g.out.empty());
}

TEST_F(QuantizeCli, DiverseCalibrationSelectionRuns) {
  const auto r = run_qforge("quantize " + model_ + " -o " + (dir_ / "diverse").string() +
                            " --method gptq --weights int4:g32 --calib-select diverse --calib " +
                            (dir_ / "calib.txt").string() + " --calib-samples 8 --calib-seqlen 64 --seed 3 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("8 sequences x 64 tokens (diverse)"), std::string::npos) << r.out;
  const auto config = nlohmann::json::parse(read_file(dir_ / "diverse" / "config.json"));
  EXPECT_EQ(config["quantization_config"]["calibration_selection"], "diverse");
  EXPECT_LT(kld("diverse"), 0.5);
}

TEST_F(QuantizeCli, BadCalibrationAndImpossibleSchemesAreClearErrors) {
  const std::string out = (dir_ / "bad").string();
  const std::string calib = (dir_ / "calib.txt").string();
  expect_one_line_error("quantize " + model_ + " -o " + out + " --method gptq --calib " + calib +
                            " --calib-samples 512 --calib-seqlen 512",
                        "fewer");
  const std::string empty = (dir_ / "empty.txt").string();
  std::ofstream(empty).close();
  expect_one_line_error("quantize " + model_ + " -o " + out + " --method gptq --calib " + empty, "empty");
  expect_one_line_error("quantize " + model_ + " -o " + out + " --method awq --weights int4:tensor --calib " + calib +
                            " --calib-samples 4 --calib-seqlen 64",
                        "per-tensor");
  expect_one_line_error("quantize " + model_ + " -o " + out + " --method gptq", "--calib");
  expect_one_line_error("quantize " + model_ + " -o " + out + " --method rtn --weights int9", "int9");
  expect_one_line_error("quantize " + model_ + " -o " + out + " --method smoothquant --alpha 2 --calib " + calib,
                        "--alpha");
  expect_one_line_error("quantize " + model_ + " -o " + out + " --method rtn --act-mode static-tensor", "--acts");
  EXPECT_FALSE(fs::exists(out + "/model.safetensors")) << "no output after a failure";
}

TEST_F(QuantizeCli, InspectWithCalibrationReportsActivationOutliers) {
  const std::string calib = (dir_ / "calib.txt").string();
  const auto r = run_qforge("inspect " + model_ + " --calib " + calib + " --calib-samples 4 --calib-seqlen 64 --json -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 20u);  // 5 blocks x 4 input sites
  bool heavy_tail = false;
  for (const auto& e : j) {
    EXPECT_GE(e["max_median_ratio"].get<double>(), 1.0);
    EXPECT_GE(e["outlier_values"].get<int64_t>(), 0);
    // SwiGLU's hidden activations are the heavy-tailed ones in this model.
    if (e["site"] == "ffn_hidden" && e["kurtosis"].get<double>() > 6.0) heavy_tail = true;
  }
  EXPECT_TRUE(heavy_tail);
  const std::string empty = (dir_ / "empty_inspect.txt").string();
  std::ofstream(empty).close();
  expect_one_line_error("inspect " + model_ + " --calib " + empty, "empty");
}

}  // namespace
}  // namespace qf::test
