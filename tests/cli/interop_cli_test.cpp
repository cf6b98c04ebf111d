// qforge quantize --format and qforge convert --to between the quantized
// layouts, on the real stories260K; eval, generate and bench run each of them
// directly and see the same model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "file_text.h"
#include "run_command.h"
#include "shared_data.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class InteropCli : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_SHARED_DATA("stories260K/stories260K.bin");
    QF_REQUIRE_SHARED_DATA("stories260K/tinystories_valid_sample_30KB.txt");
    QF_REQUIRE_SHARED_DATA("stories260K/tok512.model");
    model_ = shared_data_path("stories260K/stories260K.bin");
    text_ = shared_data_path("stories260K/tinystories_valid_sample_30KB.txt");
    dir_ = fs::temp_directory_path() /
           ("qf_interop_cli_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // `flags` "--dequantize": the reference path, every layer in f32, so equal
  // weights give equal perplexities bit for bit. Without it quantized layers run
  // on the integer kernels and float ones (what GPTQ / AWQ could not pack) on BLAS.
  double perplexity(const std::string& model, const std::string& flags = "--dequantize") {
    const auto r = run_qforge("eval " + model + " --text " + text_ + " --protocol chunks --ctx 64 --max-windows 4 --json -t 2 " +
                              flags);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out)["perplexity"].get<double>() : -1.0;
  }

  std::string model_, text_;
  fs::path dir_;
};

TEST_F(InteropCli, QuantizeToEachFormatAndConvertBetweenThemKeepsThePerplexity) {
  // fp16 scales: what GPTQ and AWQ store, so every layout holds the same model.
  auto r = run_qforge("quantize " + model_ + " -o " + path("qforge") + " --weights int4:g32:f16scale -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_qforge("quantize " + model_ + " -o " + path("gptq") + " --format gptq --weights int4:g32 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("--format gptq stores int4:g32:f16scale instead of int4:g32"), std::string::npos) << r.err;
  const auto config = nlohmann::json::parse(read_file(path("gptq") + "/config.json"));
  EXPECT_EQ(config["quantization_config"]["quant_method"], "gptq");
  EXPECT_EQ(config["quantization_config"]["bits"], 4);
  EXPECT_EQ(config["quantization_config"]["group_size"], 32);
  EXPECT_TRUE(fs::exists(path("gptq") + "/quantize_config.json"));
  EXPECT_TRUE(fs::exists(path("gptq") + "/tokenizer.model") || fs::exists(path("gptq") + "/tok512.model"));

  const double want = perplexity(path("qforge"));
  ASSERT_GT(want, 1.0);
  EXPECT_EQ(perplexity(path("gptq")), want);
  ASSERT_EQ(run_qforge("convert " + path("gptq") + " " + path("awq") + " --to awq").exit_code, 0);
  ASSERT_EQ(run_qforge("convert " + path("awq") + " " + path("ct") + " --to compressed-tensors").exit_code, 0);
  ASSERT_EQ(run_qforge("convert " + path("ct") + " " + path("back") + " --to qforge").exit_code, 0);
  ASSERT_EQ(run_qforge("convert " + path("ct") + " " + path("f32") + " --to f32").exit_code, 0);
  for (const char* name : {"awq", "ct", "back", "f32"}) EXPECT_EQ(perplexity(path(name)), want) << name;
  // On the integer kernels: a layout that kept every layer quantized runs exactly as ours does;
  // GPTQ's float MLP layers (172-wide rows do not pack) differ only by float rounding.
  ASSERT_EQ(run_qforge("convert " + path("qforge") + " " + path("ct_all") + " --to compressed-tensors").exit_code, 0);
  const double packed = perplexity(path("qforge"), "");
  EXPECT_EQ(perplexity(path("ct_all"), ""), packed);
  EXPECT_NEAR(perplexity(path("gptq"), ""), packed, packed * 1e-4);

  const auto a = run_qforge("generate " + path("qforge") + " -n 20 -t 1");
  const auto b = run_qforge("generate " + path("ct") + " -n 20 -t 1");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(run_qforge("bench " + path("awq") + " -t 1 --pp 8 --tg 4 -r 1").exit_code, 0);
}

TEST_F(InteropCli, ClearErrors) {
  expect_one_line_error("convert " + model_ + " " + path("x") + " --to gptq", "is not a quantized checkpoint");
  expect_one_line_error("quantize " + model_ + " -o " + path("y") + " --format awq --weights int8:g32 -t 1",
                        "4-bit integer schemes only");
  expect_one_line_error("quantize " + model_ + " -o " + path("z") + " --format gptq --weights nf4 -t 1",
                        "integer schemes only");
  expect_one_line_error("quantize " + model_ + " -o " + path("w") + " --format compressed-tensors --method smoothquant -t 1",
                        "weight-only");
  EXPECT_FALSE(fs::exists(path("x")) || fs::exists(path("y")) || fs::exists(path("z")) || fs::exists(path("w")));
}

}  // namespace
}  // namespace qf::test
