#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "run_command.h"
#include "shared_data.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

const std::string kStoriesFile = "stories260K/stories260K.bin";
const std::string kStories = shared_data_path(kStoriesFile);

// A bad invocation must fail with exactly one clear line on stderr.
void expect_one_line_error(const std::string& args, const std::string& needle) {
  const CommandResult r = run_qforge(args);
  EXPECT_NE(r.exit_code, 0) << args;
  EXPECT_EQ(count_lines(r.err), 1) << args << "\nstderr:\n" << r.err;
  EXPECT_NE(r.err.find("qforge: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
}

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
  QF_REQUIRE_SHARED_DATA(kStoriesFile);
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
  QF_REQUIRE_SHARED_DATA(kStoriesFile);
  const auto r = run_qforge("inspect " + kStories + " --brief --scheme int8:channel --scheme nf4:g64");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("260032 parameters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("int8:channel"), std::string::npos);
  EXPECT_NE(r.out.find("nf4:g64"), std::string::npos);
}

}  // namespace
}  // namespace qf::test
