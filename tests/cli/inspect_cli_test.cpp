#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "core/tensor.h"
#include "formats/named_tensor.h"
#include "formats/safetensors.h"
#include "run_command.h"
#include "shared_data.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

const std::string kStories = shared_data_path(kStoriesModelFile);

class InspectCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qf_inspect_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write_file(const std::string& name, const std::string& bytes) {
    const auto p = dir_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  fs::path dir_;
};

TEST_F(InspectCli, VersionAndHelp) {
  const auto v = run_qforge("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("qforge "), std::string::npos);
  const auto h = run_qforge("inspect --help");
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("--scheme"), std::string::npos);
}

TEST_F(InspectCli, BadInputGivesOneClearLine) {
  expect_one_line_error("inspect", "file");
  expect_one_line_error("inspect /no/such/model.safetensors", "/no/such/model.safetensors");
  expect_one_line_error("frobnicate", "frobnicate");
  expect_one_line_error("inspect x.bin --no-such-flag", "--no-such-flag");
  // Scheme errors are reported before the file is opened.
  expect_one_line_error("inspect /no/such/file --scheme int9", "int9");
  expect_one_line_error("inspect /no/such/file --scheme int1:channel", "int1");
  expect_one_line_error("inspect /no/such/file --scheme int4:g0", "g0");
  expect_one_line_error("inspect /no/such/file --scheme wat4", "wat4");
  expect_one_line_error("inspect /no/such/file --scheme int4:g128:asym,nf4:asym", "asym");
  expect_one_line_error("inspect " + kStories + " -t -2", "threads");
}

TEST_F(InspectCli, HostileFilesAreClearErrors) {
  expect_one_line_error("inspect " + write_file("tiny.safetensors", "abc"), "tiny.safetensors");
  // Header length far beyond the file.
  std::string header_len("\xff\xff\x00\x00\x00\x00\x00\x00", 8);
  expect_one_line_error("inspect " + write_file("long.safetensors", header_len + "{}"), "long.safetensors");
  expect_one_line_error("inspect " + dir_.string(), dir_.string());
}

TEST_F(InspectCli, InspectsStories260K) {
  QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
  const auto r = run_qforge("inspect " + kStories + " --json --scheme int8:channel,int4:g64 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "llama2c");
  EXPECT_EQ(j["params"], 260032);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& t : j["tensors"]) shapes[t["name"]] = t["shape"].get<std::vector<int64_t>>();
  // dim 64, hidden 172, 5 layers, 8 heads of 8, 4 KV heads (kv_dim 32), vocab 512, shared classifier.
  std::map<std::string, std::vector<int64_t>> expected = {{"model.embed_tokens.weight", {512, 64}},
                                                          {"model.norm.weight", {64}}};
  for (int l = 0; l < 5; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    expected[p + "input_layernorm.weight"] = {64};
    expected[p + "post_attention_layernorm.weight"] = {64};
    expected[p + "self_attn.q_proj.weight"] = {64, 64};
    expected[p + "self_attn.k_proj.weight"] = {32, 64};
    expected[p + "self_attn.v_proj.weight"] = {32, 64};
    expected[p + "self_attn.o_proj.weight"] = {64, 64};
    expected[p + "mlp.gate_proj.weight"] = {172, 64};
    expected[p + "mlp.up_proj.weight"] = {172, 64};
    expected[p + "mlp.down_proj.weight"] = {64, 172};
  }
  EXPECT_EQ(shapes, expected);
  ASSERT_EQ(j["schemes"].size(), 2u);
  const auto& int8 = j["schemes"][0];
  const auto& int4 = j["schemes"][1];
  EXPECT_EQ(int8["scheme"], "int8:channel");
  // 8-bit per-channel RTN on trained weights: ~40 dB; int4 with 64-groups (ragged 172 rows): ~20 dB.
  EXPECT_GT(int8["sqnr_db"].get<double>(), 35.0);
  EXPECT_GT(int4["sqnr_db"].get<double>(), 15.0);
  EXPECT_LT(int4["sqnr_db"].get<double>(), int8["sqnr_db"].get<double>());
  EXPECT_LT(int4["bits_per_weight"].get<double>(), int8["bits_per_weight"].get<double>());
}

TEST_F(InspectCli, TextTableListsEveryScheme) {
  QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
  const auto r = run_qforge("inspect " + kStories + " --brief --scheme int8:channel --scheme nf4:g64");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("260032 parameters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("int8:channel"), std::string::npos);
  EXPECT_NE(r.out.find("nf4:g64"), std::string::npos);
}

TEST(RunCommand, CountsRawLines) {
  EXPECT_EQ(count_lines(""), 0);
  EXPECT_EQ(count_lines("a\n"), 1);
  EXPECT_EQ(count_lines("a"), 1);
  EXPECT_EQ(count_lines("a\n\n"), 2);
  EXPECT_EQ(count_lines("\n"), 1);
  EXPECT_TRUE(is_one_line("qforge: error: x\n"));
  EXPECT_FALSE(is_one_line("qforge: error: x"));
  EXPECT_FALSE(is_one_line("qforge: error: x\n\n"));
  EXPECT_FALSE(is_one_line("a\nb\n"));
  EXPECT_FALSE(is_one_line(""));
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Tensor matrix(std::vector<float> values, int64_t rows, int64_t cols) { return Tensor::from_f32(values, {rows, cols}); }

// A hostile tensor name reaches an error through inspect's per-tensor
// context: the error stays one line (the name is quoted and escaped) and
// names the file.
TEST_F(InspectCli, HostileTensorNameInAnErrorStaysOneLine) {
  const std::string path = (dir_ / "evil.safetensors").string();
  const std::string evil = "evil\nqforge: ok";
  // int2 symmetric: scale = amax = 3e38 > 2^127, which no power-of-two scale covers.
  formats::write_safetensors(path, std::vector<formats::NamedTensor>{{evil, matrix({3.0e38f, -1, 2, 1}, 2, 2)}});
  const CommandResult r = run_qforge("inspect " + shell_quote(path) + " -s int2:pow2scale");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(is_one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(path + ": tensor \"evil\\nqforge: ok\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2^127"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
}

// The stats count NaN/Inf; the scheme evaluation skips such a matrix instead
// of failing the whole checkpoint, and says so.
TEST_F(InspectCli, NonFiniteTensorIsReportedNotFatal) {
  const std::string path = (dir_ / "nan.safetensors").string();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  formats::write_safetensors(path, std::vector<formats::NamedTensor>{
                                       {"evil\nqforge: ok", matrix({1, nan, 2, INFINITY}, 2, 2)},
                                       {"good", matrix({1, -1, 0.5f, 0.25f}, 2, 2)},
                                       {"norm", Tensor::from_f32(std::vector<float>{1, nan}, {2})}});
  const CommandResult t = run_qforge("inspect " + shell_quote(path) + " -s int8");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("not evaluated (2 NaN/Inf)"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("1 tensor with NaN/Inf values was not evaluated"), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find("nan "), std::string::npos) << t.out;  // no NaN in the summary

  const CommandResult j = run_qforge("inspect " + shell_quote(path) + " -s int8 --json");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.out);
  ASSERT_EQ(doc["tensors"].size(), 3u);
  const auto& bad = doc["tensors"][0];
  EXPECT_EQ(bad["name"], "evil\nqforge: ok");
  EXPECT_EQ(bad["stats"]["non_finite"], 2);
  EXPECT_EQ(bad["schemes"]["int8:channel"]["evaluated"], false);
  EXPECT_EQ(doc["not_evaluated"], nlohmann::json::array({"evil\nqforge: ok"}));
  // The summary covers "good" (quantized) and "norm" (kept) only.
  const auto& int8 = doc["schemes"][0];
  EXPECT_EQ(int8["scheme"], "int8:channel");
  EXPECT_TRUE(int8["sqnr_db"].is_number() || int8["sqnr_db"].is_null());
  EXPECT_TRUE(int8["bits_per_weight"].is_number());
}

TEST_F(InspectCli, EmptyAndZeroSizeCheckpointsPrintNoNaN) {
  const std::string empty = (dir_ / "empty.safetensors").string();
  formats::write_safetensors(empty, std::vector<formats::NamedTensor>{});
  const std::string zero = (dir_ / "zero.safetensors").string();
  formats::write_safetensors(zero, std::vector<formats::NamedTensor>{{"w", Tensor::zeros(DType::F32, {0, 4})},
                                                                     {"b", Tensor::zeros(DType::F32, {0})}});
  for (const std::string& path : std::vector<std::string>{empty, zero}) {
    for (const std::string extra : {"", " --brief", " --json"}) {
      const CommandResult r = run_qforge("inspect " + path + " -s int8,int4:g32" + extra);
      ASSERT_EQ(r.exit_code, 0) << path << extra << ": " << r.err;
      EXPECT_EQ(r.out.find("nan"), std::string::npos) << path << extra << ":\n" << r.out;
      EXPECT_EQ(r.out.find("inf"), std::string::npos) << path << extra << ":\n" << r.out;
      if (extra == " --json") {
        const auto doc = nlohmann::json::parse(r.out);
        EXPECT_EQ(doc["params"], 0);
        EXPECT_TRUE(doc["schemes"][0]["bits_per_weight"].is_null()) << r.out;
      } else if (extra == " --brief") {
        EXPECT_NE(r.out.find("(as stored)"), std::string::npos) << r.out;
      }
    }
  }
}

// A path that is not UTF-8 still gives valid JSON (bad bytes replaced), not
// "internal error".
TEST_F(InspectCli, JsonWithNonUtf8PathIsValid) {
  const std::string path = (dir_ / "bad\xff\xfename.safetensors").string();
  formats::write_safetensors(path, std::vector<formats::NamedTensor>{{"w", matrix({1, 2, 3, 4}, 2, 2)}});
  const CommandResult r = run_qforge("inspect " + shell_quote(path) + " --json -s int8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_NE(doc["path"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD
}

}  // namespace
}  // namespace qf::test
