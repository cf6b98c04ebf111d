// Quantized GGUF end to end on the real stories260K: `qforge quantize
// --format gguf`, `qforge eval` on the file scoring exactly like the same
// quantization done in memory, conversions, and an independent reader
// (@huggingface/gguf, tests/gguf_js) agreeing on every tensor's name, type
// and shape.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "eval/evaluate.h"
#include "eval/protocol.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/gguf_quants.h"
#include "formats/gguf_recipe.h"
#include "model/model.h"
#include "run_command.h"
#include "runtime/runtime.h"
#include "shared_data.h"
#include "tokenizer/tokenizer.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class GgufCli : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_SHARED_DATA(kStoriesModelFile);
    QF_REQUIRE_SHARED_DATA(kStoriesTextFile);
    QF_REQUIRE_SHARED_DATA("stories260K/tok512.model");
    model_ = shared_data_path(kStoriesModelFile);
    text_ = shared_data_path(kStoriesTextFile);
    dir_ = fs::temp_directory_path() / ("qf_gguf_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // `qforge eval FILE --json -t 1` (one thread: sums in a fixed order);
  // max_windows > 0 scores only the first windows (quicker comparisons).
  // `extra` adds flags (--dequantize: quantized folders through the float path, as GGUF runs).
  nlohmann::json eval_file(const std::string& file, int max_windows = 0, const std::string& extra = "") const {
    const auto r = run_qforge("eval " + file + " --text " + text_ + " --json -t 1" +
                              (max_windows ? " --max-windows " + std::to_string(max_windows) : "") + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }

  std::string model_, text_;
  fs::path dir_;
};

std::string read_text(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The mixture applied in memory: every tensor the writer would store as a
// block type is quantized and dequantized row by row in [out, in]
// orientation (blocks do not depend on the q/k row order), F16 ones rounded.
model::Model quantized_in_memory(const model::Model& m, const formats::GgufRecipe& recipe) {
  formats::GgufModelWriteOptions o;
  o.recipe = recipe;
  const auto tensors = m.named_tensors();
  const auto types = formats::gguf_model_tensor_types(m.config, tensors, o);
  std::vector<formats::NamedTensor> out;
  for (const auto& nt : tensors) {
    formats::GgmlType type = formats::GgmlType::F32;
    for (const auto& t : types)
      if (t.hf_name == nt.name) type = t.type;
    Tensor w = nt.tensor.to_f32();
    if (formats::gguf_is_codec_type(type)) {
      const Tensor q = formats::gguf_quantize_matrix(type, w);
      w = formats::gguf_dequantize_tensor(type, {q.bytes(), q.nbytes()}, w.shape());
    } else if (type == formats::GgmlType::F16) {
      w = w.cast(DType::F16).to_f32();
    }
    out.push_back({nt.name, w});
  }
  return model::build_model(m.config, out, "in-memory " + recipe.name);
}

// Perplexity exactly as `qforge eval` computes it (chunks protocol, one thread).
double perplexity(const model::Model& m, const std::string& tokenizer_source, const std::string& text_file) {
  const auto tok = tokenizer::make_tokenizer(model::load_vocab(tokenizer_source));
  eval::ProtocolOptions popt;
  const auto windows = eval::make_windows(*tok, read_text(text_file), popt);
  size_t longest = 0;
  for (const auto& w : windows) longest = std::max(longest, w.tokens.size());
  runtime::RuntimeOptions ropt;
  ropt.n_threads = 1;
  ropt.context = static_cast<int64_t>(longest);
  runtime::Runtime rt(m, ropt);
  return eval::evaluate(rt, nullptr, windows).perplexity();
}

TEST_F(GgufCli, Q8_0AndQ4_0FilesScoreExactlyLikeTheInMemoryQuantization) {
  const model::Model float_model = model::load_model(model_);
  const double float_ppl = eval_file(model_)["perplexity"].get<double>();
  double last = 0.0;
  for (const char* spec : {"q8_0", "q4_0"}) {
    SCOPED_TRACE(spec);
    const std::string file = path(std::string("s_") + spec + ".gguf");
    const auto q = run_qforge("quantize " + model_ + " -o " + file + " --format gguf --weights " + spec);
    ASSERT_EQ(q.exit_code, 0) << q.err;
    // stories260K's 172-wide ffn_down rows fit no 32-value block: F16, with a notice, not a broken file.
    EXPECT_NE(q.err.find("blk.0.ffn_down.weight: rows of 172 are not a multiple of the 32-value"), std::string::npos)
        << q.err;
    const formats::GgufContents c = formats::read_gguf(file);
    EXPECT_EQ(c.find("blk.0.ffn_down.weight")->type, formats::GgmlType::F16);
    EXPECT_EQ(c.find("blk.0.attn_q.weight")->type, std::string(spec) == "q8_0" ? formats::GgmlType::Q8_0
                                                                                : formats::GgmlType::Q4_0);
    EXPECT_EQ(c.find("token_embd.weight")->type, formats::GgmlType::Q8_0);  // tied: the output's type

    // The reference path bit for bit; the integer kernels (Q4_0 and Q8_0
    // blocks repacked, qforge eval's default) to float rounding.
    const double file_ppl = eval_file(file, 0, " --dequantize")["perplexity"].get<double>();
    EXPECT_NEAR(eval_file(file)["perplexity"].get<double>() / file_ppl, 1.0, 1e-5);
    const double memory_ppl =
        perplexity(quantized_in_memory(float_model, formats::parse_gguf_recipe(spec)), model_, text_);
    EXPECT_EQ(file_ppl, memory_ppl);
    EXPECT_NE(file_ppl, float_ppl);
    EXPECT_GT(file_ppl, last);  // Q4_0 costs more than Q8_0
    EXPECT_LT(file_ppl, float_ppl * 1.2);
    last = file_ppl;
  }
}

TEST_F(GgufCli, KMixturesImportanceWeightsAndGptqGiveLoadableFiles) {
  const double rtn = [&] {
    const auto q = run_qforge("quantize " + model_ + " -o " + path("rtn.gguf") + " --format gguf --weights q4_0");
    EXPECT_EQ(q.exit_code, 0) << q.err;
    return eval_file(path("rtn.gguf"), 6)["perplexity"].get<double>();
  }();
  const std::string calib = " --calib " + text_ + " --calib-samples 8 --calib-seqlen 128";
  const auto g = run_qforge("quantize " + model_ + " -o " + path("gptq.gguf") +
                            " --format gguf --weights q4_0 --method gptq" + calib);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(g.out.find("codes written into blocks"), std::string::npos) << g.out;
  EXPECT_LT(eval_file(path("gptq.gguf"), 6)["perplexity"].get<double>(), rtn);
  const auto i = run_qforge("quantize " + model_ + " -o " + path("imatrix.gguf") + " --format gguf --weights q4_0" + calib);
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_NE(i.out.find("importance weights"), std::string::npos) << i.out;
  EXPECT_LT(eval_file(path("imatrix.gguf"), 6)["perplexity"].get<double>(), rtn);
  for (const char* spec : {"q4_k_m", "q5_k_m", "q3_k_m", "q6_k", "q2_k", "q4_1", "q5_0", "q5_1"}) {
    const std::string file = path(std::string(spec) + ".gguf");
    const auto q = run_qforge("quantize " + model_ + " -o " + file + " --format gguf --weights " + spec);
    ASSERT_EQ(q.exit_code, 0) << spec << ": " << q.err;
    const double ppl = eval_file(file, 2)["perplexity"].get<double>();
    EXPECT_TRUE(std::isfinite(ppl) && ppl < 20.0) << spec << " " << ppl;
    // The integer kernels (blocks repacked; 5-bit types dequantized) score what the reference path does.
    EXPECT_NEAR(eval_file(file, 2, " --dequantize")["perplexity"].get<double>() / ppl, 1.0, 1e-5) << spec;
  }
  const auto gen = run_qforge("generate " + path("q6_k.gguf") + " -n 20 -t 1");
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_EQ(gen.out.rfind("Once upon a time", 0), 0u) << gen.out;
  const auto bench = run_qforge("bench " + path("q4_k_m.gguf") + " -t 1");
  EXPECT_EQ(bench.exit_code, 0) << bench.err;

  expect_one_line_error("quantize " + model_ + " -o " + path("x.gguf") + " --format gguf --weights q4_k_m --method gptq" + calib,
                        "needs a mixture whose grid is a scheme");
  expect_one_line_error("quantize " + model_ + " -o " + path("x.gguf") + " --format gguf --weights q9_k",
                        "unknown GGUF quantization 'q9_k'");
  expect_one_line_error("quantize " + model_ + " -o " + path("x") + " --format gguf --weights q8_0", "give -o OUT.gguf");
}

TEST_F(GgufCli, ConvertsToAndFromQuantizedGguf) {
  // A qforge folder on Q4_0's grid becomes Q4_0 blocks that score the same.
  const auto q = run_qforge("quantize " + model_ + " -o " + path("folder") + " --weights int4:g32:full:f16scale");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const auto c = run_qforge("convert " + path("folder") + " " + path("folder.gguf"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const formats::GgufContents contents = formats::read_gguf(path("folder.gguf"));
  EXPECT_EQ(contents.find("blk.2.ffn_gate.weight")->type, formats::GgmlType::Q4_0);
  EXPECT_EQ(contents.metadata.get<uint32_t>("general.file_type"), 0u);  // down_proj is ragged: written F32
  EXPECT_EQ(eval_file(path("folder.gguf"), 4, " --dequantize")["perplexity"].get<double>(),
            eval_file(path("folder"), 4, " --dequantize")["perplexity"].get<double>());
  // A GPTQ checkpoint (symmetric int4, groups of 32, fp16 scales) becomes Q4_0 blocks exactly.
  ASSERT_EQ(run_qforge("quantize " + model_ + " -o " + path("gptq") + " --format gptq --weights int4:g32").exit_code, 0);
  const auto g = run_qforge("convert " + path("gptq") + " " + path("gptq.gguf"));
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(formats::read_gguf(path("gptq.gguf")).find("blk.0.attn_q.weight")->type, formats::GgmlType::Q4_0);
  EXPECT_EQ(eval_file(path("gptq.gguf"), 4, " --dequantize")["perplexity"].get<double>(),
            eval_file(path("gptq"), 4, " --dequantize")["perplexity"].get<double>());
  // Quantized GGUF to a plain Hugging Face folder (f32: lossless) and back to a mixture.
  ASSERT_EQ(run_qforge("quantize " + model_ + " -o " + path("q.gguf") + " --format gguf --weights q4_0").exit_code, 0);
  const auto h = run_qforge("convert " + path("q.gguf") + " " + path("hf"));
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_EQ(eval_file(path("hf"), 4)["perplexity"].get<double>(),
            eval_file(path("q.gguf"), 4, " --dequantize")["perplexity"].get<double>());
  const auto m = run_qforge("convert " + model_ + " " + path("c.gguf") + " --to q5_k_m");
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(formats::read_gguf(path("c.gguf")).metadata.get<uint32_t>("general.file_type"), 17u);
  expect_one_line_error("convert " + model_ + " " + path("dir") + " --to q4_0", "must be OUT.gguf");
}

TEST_F(GgufCli, TruncatedQuantizedFilesAreOneClearLine) {
  const std::string file = path("t.gguf");
  ASSERT_EQ(run_qforge("quantize " + model_ + " -o " + file + " --format gguf --weights q4_0").exit_code, 0);
  const auto size = fs::file_size(file);
  fs::resize_file(file, size - 100);
  expect_one_line_error("eval " + file + " --text " + text_, "extends beyond");
  fs::resize_file(file, size / 2);
  expect_one_line_error("generate " + file + " -n 4", "truncated");
}

// Every GGUF we write, parsed by @huggingface/gguf (npm ci --prefix tests/gguf_js).
TEST_F(GgufCli, AnIndependentReaderAgreesOnNamesTypesAndShapes) {
  const std::string js = std::string(QF_SOURCE_DIR) + "/tests/gguf_js";
  if (!fs::exists(js + "/node_modules/@huggingface/gguf")) GTEST_SKIP() << "run: npm ci --prefix tests/gguf_js";
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
  nlohmann::json expected = {{"files", nlohmann::json::array()}};
  const model::Model m = model::load_model(model_);
  const auto tensors = m.named_tensors();
  for (const char* spec : {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k", "f16"}) {
    const std::string file = path(std::string("js_") + spec + ".gguf");
    formats::GgufModelWriteOptions o;
    uint32_t file_type = 1;
    if (std::string(spec) == "f16") {
      o.dtype = DType::F16;
      ASSERT_EQ(run_qforge("convert " + model_ + " " + file + " --dtype f16").exit_code, 0);
    } else {
      o.recipe = formats::parse_gguf_recipe(spec);
      file_type = static_cast<uint32_t>(o.recipe->file_type);
      const auto q = run_qforge("quantize " + model_ + " -o " + file + " --format gguf --weights " + spec);
      ASSERT_EQ(q.exit_code, 0) << q.err;
    }
    // What the writer plans, from the model (not from our reader).
    nlohmann::json list = nlohmann::json::array();
    for (const auto& t : formats::gguf_model_tensor_types(m.config, tensors, o)) {
      std::vector<int64_t> dims(t.gguf_shape.rbegin(), t.gguf_shape.rend());
      list.push_back({{"name", t.gguf_name}, {"type", formats::ggml_type_name(t.type)}, {"dims", dims}});
    }
    expected["files"].push_back({{"path", file}, {"file_type", file_type}, {"tensors", list}});
  }
  const std::string expected_file = path("expected.json");
  std::ofstream(expected_file) << expected.dump(1);
  const std::string cmd = "node " + js + "/check_gguf.mjs " + expected_file + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) output.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("js_q4_k_m.gguf: 47 tensors checked"), std::string::npos) << output;
}

}  // namespace
}  // namespace qf::test
