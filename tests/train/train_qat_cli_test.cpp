// qforge train-qat on the real stories260K model, as a user runs it: the
// output is a quantized folder eval reads, runs are byte-identical for a seed
// and thread count (and close across thread counts), a diverging run and an
// interrupted one write nothing, schemes and checkpoints it cannot train are
// refused in one line, and on the docs/results.md protocol (train on the first
// half of the TinyStories lines, evaluate on the second half against fp32) QAT
// beats GPTQ by the factors docs/results.md reports.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
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

class TrainQatCli : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
    QF_REQUIRE_SHARED_DATA(kStoriesTextFile);
    dir_ = fs::temp_directory_path() / ("qf_train_qat_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // The first half of the lines trains, the second half evaluates (scripts/quantize_table.sh).
    std::istringstream in(read_file(shared_data_path(kStoriesTextFile)));
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    std::ofstream a(dir_ / "calib.txt"), b(dir_ / "eval.txt");
    for (size_t i = 0; i < lines.size(); ++i) (i < lines.size() / 2 ? a : b) << lines[i] << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string model() const { return shared_data_path(kStoriesModelFile); }
  std::string calib() const { return (dir_ / "calib.txt").string(); }
  std::string out(const std::string& name) const { return (dir_ / name).string(); }
  std::string train(const std::string& name, const std::string& flags) const {
    return "train-qat " + model() + " -o " + out(name) + " --calib " + calib() + " " + flags;
  }
  // Mean KLD against fp32 on the second half, --protocol lines.
  double kld(const std::string& name) const {
    const CommandResult r = run_qforge("eval " + out(name) + " --text " + (dir_ / "eval.txt").string() +
                                       " --protocol lines --baseline " + model() + " --json -t 2");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["baseline"]["kld_mean"].get<double>();
  }

  fs::path dir_;
};

// 1 and 2 threads are compared by quality, not bytes: OpenBLAS's AVX2 and
// AVX-512 sgemm kernels round differently in the last bits depending on how
// the threads split the matrix (its generic kernel does not).
TEST_F(TrainQatCli, SameSeedSameBytesOnTwoThreadsCloseOnOne) {
  const std::string flags = "--weights int3:g32:asym --steps 3 --batch 2 --seqlen 32 --lr 1e-3 --seed 5";
  for (const char* name : {"a", "b"}) {
    const CommandResult r = run_qforge(train(name, flags + " -t 2"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("per step"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("training memory"), std::string::npos) << r.out;
  }
  ASSERT_EQ(run_qforge(train("c", flags + " -t 1")).exit_code, 0);
  ASSERT_EQ(run_qforge(train("d", "--weights int3:g32:asym --steps 3 --batch 2 --seqlen 32 --lr 1e-3 --seed 6 -t 2"))
                .exit_code,
            0);
  const std::string a = read_file(out("a") + "/model.safetensors");
  ASSERT_GT(a.size(), 10000u);
  EXPECT_EQ(a, read_file(out("b") + "/model.safetensors"));
  EXPECT_EQ(read_file(out("a") + "/config.json"), read_file(out("b") + "/config.json"));
  EXPECT_NE(a, read_file(out("d") + "/model.safetensors")) << "the seed changes nothing";
  // The same folder format as quantize: eval runs it, convert rewrites it as GPTQ.
  const nlohmann::json cfg = nlohmann::json::parse(read_file(out("a") + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "qforge");
  EXPECT_EQ(cfg["quantization_config"]["method"], "qat");
  const double kld_a = kld("a");
  EXPECT_GT(kld_a, 0.0);
  EXPECT_NEAR(kld("c"), kld_a, 0.02 * kld_a) << "1 and 2 threads train different models";
  const CommandResult conv = run_qforge("convert " + out("a") + " " + out("ct") + " --to compressed-tensors");
  EXPECT_EQ(conv.exit_code, 0) << conv.err;
}

TEST_F(TrainQatCli, DivergenceNamesStepAndLayerAndWritesNothing) {
  const CommandResult r = run_qforge(train("nan", "--weights int4:g32 --steps 20 --batch 1 --seqlen 32 --lr 1e30 -t 1"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(is_one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("diverged at step"), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.find("layer model.layers.") != std::string::npos || r.err.find("block ") != std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out("nan")));
}

TEST_F(TrainQatCli, SigintStopsWithoutOutput) {
  // timeout(1) sends SIGINT after 3 s, well inside a run of many steps.
  const std::string cmd = "timeout --preserve-status -s INT 3 " + std::string(QF_QFORGE_BIN) + " " +
                          train("int", "--weights int4:g32 --steps 1000000 --batch 1 --seqlen 32 -t 1") +
                          " >/dev/null 2>" + out("err.txt");
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string err = read_file(out("err.txt"));
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  EXPECT_NE(err.find("nothing written"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out("int")));
}

TEST_F(TrainQatCli, RefusesWhatItCannotTrain) {
  expect_one_line_error(train("x", "--weights nf4"), "int2..int8");
  expect_one_line_error(train("x", "--weights fp8e4m3"), "int2..int8");
  expect_one_line_error(train("x", "--acts int4"), "--acts int8");
  expect_one_line_error(train("x", "--e2e-steps 5"), "--blockwise");
  expect_one_line_error(train("x", "--lr -1"), "--lr");
  ASSERT_EQ(run_qforge("quantize " + model() + " -o " + out("rtn") + " --weights int4:g32").exit_code, 0);
  expect_one_line_error("train-qat " + out("rtn") + " -o " + out("x") + " --calib " + calib(),
                        "already a quantized checkpoint");
  ASSERT_EQ(run_qforge("convert " + model() + " " + out("q8.gguf") + " --to q8_0").exit_code, 0);
  expect_one_line_error("train-qat " + out("q8.gguf") + " -o " + out("x") + " --calib " + calib(), "already quantized");
  EXPECT_FALSE(fs::exists(out("x")));
}

TEST_F(TrainQatCli, BlockwiseTrainsAndWrites) {
  const CommandResult r = run_qforge(
      train("bw", "--weights int3:g32:asym --blockwise --steps 2 --e2e-steps 2 --batch 2 --seqlen 32 --seed 1 -t 2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("qat (blockwise)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("12 steps"), std::string::npos) << r.out;  // 5 blocks x 2 + 2
  EXPECT_GT(kld("bw"), 0.0);
}

// docs/results.md's targets, with shorter runs than its table (the same
// protocol): int2:g16:asym QAT KLD <= 0.5x GPTQ's, int3:g32:asym <= 0.6x.
TEST_F(TrainQatCli, BeatsGptqByTheDocumentedFactors) {
  struct Case {
    const char* scheme;
    const char* flags;
    double factor;
  };
  for (const Case& c : {Case{"int2:g16:asym", "--steps 80 --batch 4 --lr 2e-3", 0.5},
                        Case{"int3:g32:asym", "--steps 100 --batch 8 --lr 5e-4", 0.6}}) {
    const std::string s = c.scheme;
    const CommandResult g = run_qforge("quantize " + model() + " -o " + out("gptq") + " --method gptq --weights " + s +
                                       " --calib " + calib() + " --calib-samples 32 --calib-seqlen 128 --seed 1 -t 2");
    ASSERT_EQ(g.exit_code, 0) << g.err;
    const CommandResult q = run_qforge(train("qat", "--weights " + s + " " + c.flags + " --seed 1 -t 2"));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    const double gptq = kld("gptq"), qat = kld("qat");
    EXPECT_LE(qat, c.factor * gptq) << s << ": QAT KLD " << qat << ", GPTQ " << gptq;
    fs::remove_all(out("gptq"));
    fs::remove_all(out("qat"));
  }
}

}  // namespace
}  // namespace qf::test
