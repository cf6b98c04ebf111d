// Every model family through the whole product, as a user runs it: a tiny
// random model made by transformers (from a config dict, never the hub) with
// tok512 as its tokenizer goes through every PTQ method, mixed precision, a
// rotation, QAT, every export and GGUF, and each output is scored against
// the fp32 model by `qforge eval` and generates text. The judges of the
// logits themselves are tests/runtime/transformers_test.cpp and
// tests/llama_cpp; this test catches a family a method or writer forgot.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "run_command.h"
#include "shared_data.h"
#include "temp_dir.h"
#include "transformers_model.h"

namespace qf::test {
namespace {

using nlohmann::json;

struct Family {
  std::string name;
  json config;
};

void PrintTo(const Family& f, std::ostream* os) { *os << f.name; }

json decoder(const std::string& type, json extra) {
  json c = {{"model_type", type},        {"vocab_size", 512},           {"hidden_size", 64},
            {"intermediate_size", 128},  {"num_hidden_layers", 2},      {"num_attention_heads", 4},
            {"num_key_value_heads", 2},  {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false}, {"bos_token_id", 1},         {"eos_token_id", 2}};
  c.update(extra);
  return c;
}

std::vector<Family> families() {
  return {
      {"llama3", decoder("llama", {{"rope_parameters", {{"rope_type", "llama3"}, {"rope_theta", 500000.0},
                                                        {"factor", 8.0}, {"low_freq_factor", 1.0},
                                                        {"high_freq_factor", 4.0},
                                                        {"original_max_position_embeddings", 64}}}})},
      {"qwen3", decoder("qwen3", {{"head_dim", 32}, {"tie_word_embeddings", true}})},
      {"gemma3", decoder("gemma3_text", {{"num_hidden_layers", 6}, {"head_dim", 32}, {"sliding_window", 16},
                                         {"query_pre_attn_scalar", 32}, {"tie_word_embeddings", true}})},
      {"phi3", decoder("phi3", {{"pad_token_id", nullptr},
                                {"original_max_position_embeddings", 64},
                                {"rope_parameters",
                                 {{"rope_type", "longrope"},
                                  {"rope_theta", 10000.0},
                                  {"short_factor", {1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7}},
                                  {"long_factor", {1.5, 2.0, 3.0, 4.5, 6.0, 8.0, 11.0, 16.0}}}}})},
  };
}

class FamiliesCli : public ::testing::TestWithParam<Family> {};

TEST_P(FamiliesCli, EveryMethodAndExportRunsAndStaysCloseToFp32) {
  if (transformers_python().empty())
    GTEST_SKIP() << "no python with torch and transformers (scripts/python-env.sh makes build/venv)";
  if (!shared_data_exists("stories260K/tok512.model")) GTEST_SKIP() << "../shared/data/stories260K is absent";
  const Family& f = GetParam();
  TempDir dir;
  const std::string model = dir.file("model");
  const TransformersModel ref = make_transformers_model(f.config, {1, 2, 3}, 512, model);
  ASSERT_TRUE(ref.error.empty()) << ref.error;
  std::filesystem::copy_file(shared_data_path("stories260K/tok512.model"), model + "/tokenizer.model");
  const std::string text = shared_data_path(kStoriesTextFile);
  const std::string calib = " --calib '" + text + "' --calib-samples 8 --calib-seqlen 64";

  struct Step {
    std::string label, args, output;
    // Families the step must refuse, with a word of the one-line reason:
    // Gemma's sandwich norms do not commute with a residual rotation, and the
    // trainer has no backward pass for them yet.
    std::map<std::string, std::string> refused = {};
  };
  const std::vector<Step> steps = {
      {"rtn", "quantize {m} -o {o} --weights int4:g32", "rtn"},
      {"gptq", "quantize {m} -o {o} --method gptq --weights int4:g32 --act-order" + calib, "gptq"},
      {"awq", "quantize {m} -o {o} --method awq --weights int4:g32" + calib, "awq"},
      {"smoothquant w8a8", "quantize {m} -o {o} --method smoothquant --acts int8" + calib, "sq"},
      {"mixed precision", "quantize {m} -o {o} --budget-bpw 5" + calib, "mp"},
      {"rotate", "quantize {m} -o {o} --rotate hadamard-offline --weights int4:g32" + calib, "rot",
       {{"gemma3", "(1 + w)"}}},
      {"gptq export", "quantize {m} -o {o} --format gptq --method gptq --weights int4:g32" + calib, "gptq_fmt"},
      {"awq export", "quantize {m} -o {o} --format awq --method awq --weights int4:g32" + calib, "awq_fmt"},
      {"compressed-tensors", "quantize {m} -o {o} --format compressed-tensors --weights int8:channel", "ct"},
      {"gguf q4_k_m", "quantize {m} -o {o} --format gguf --weights q4_k_m", "q4km.gguf"},
      {"gguf gptq q4_0", "quantize {m} -o {o} --format gguf --weights q4_0 --method gptq" + calib, "q40.gguf"},
      {"qat", "train-qat {m} -o {o} --weights int4:g32 --steps 4 --calib '" + text + "'", "qat",
       {{"gemma3", "sandwich norms"}}},
  };
  for (const Step& s : steps) {
    SCOPED_TRACE(f.name + " " + s.label);
    std::string args = s.args;
    args.replace(args.find("{m}"), 3, "'" + model + "'");
    const std::string out = dir.file(s.output);
    args.replace(args.find("{o}"), 3, "'" + out + "'");
    const CommandResult q = run_qforge(args);
    if (const auto r = s.refused.find(f.name); r != s.refused.end()) {
      EXPECT_NE(q.exit_code, 0) << args;
      EXPECT_TRUE(is_one_line(q.err) && q.err.find(r->second) != std::string::npos) << q.err;
      EXPECT_FALSE(std::filesystem::exists(out)) << "a refused step left " << out;
      continue;
    }
    ASSERT_EQ(q.exit_code, 0) << args << "\n" << q.err;
    const CommandResult e =
        run_qforge("eval '" + out + "' --baseline '" + model + "' --text '" + text + "' --max-windows 2 --json");
    ASSERT_EQ(e.exit_code, 0) << e.err;
    const json j = json::parse(e.out);
    const double kld = j.at("baseline").at("kld_mean").get<double>();
    std::cout << f.name << " " << s.label << ": KLD " << kld << ", top-1 "
              << j.at("baseline").at("top1_agreement").get<double>() << "\n";
    // 4-bit weights of a random model move its distribution by ~1e-2; a
    // family a path mishandles (a wrong norm, rope or fused layout) by > 0.5.
    EXPECT_LT(kld, 0.2) << s.label;
    const CommandResult g = run_qforge("generate '" + out + "' -p 'Once upon a time' -n 8");
    EXPECT_EQ(g.exit_code, 0) << g.err;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, FamiliesCli, ::testing::ValuesIn(families()),
                         [](const ::testing::TestParamInfo<Family>& p) { return p.param.name; });

}  // namespace
}  // namespace qf::test
