// Real llama.cpp (node-llama-cpp's prebuilt binaries, tests/llama_cpp) as
// the outside judge of the GGUF files qforge writes: one node process scores
// a batch of files (next-token distributions after every position of a
// token sequence, or the file's own tokenization of a text).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace qf::test {

struct JudgeJob {
  std::string model;                  // a .gguf file
  std::vector<int32_t> tokens;        // evaluate these (empty: no evaluation)
  std::optional<std::string> text;    // tokenize this file's text (no BOS)
};

struct JudgeResult {
  bool ok = false;
  std::string error;                  // why llama.cpp refused the file
  int64_t n_vocab = 0;
  std::vector<float> probs;           // [tokens.size(), n_vocab]: p(next | tokens[0..t])
  std::vector<int32_t> tokenized;     // the text's ids, when asked
};

struct JudgeRun {
  std::string node_llama_cpp, llama_cpp_release, cpu_backend;  // which judge, which ggml CPU build
  std::vector<JudgeResult> results;   // one per job, in order
};

// Where the judge lives, or nullopt with the reason it cannot run (node or
// the npm package missing: `npm ci --prefix tests/llama_cpp`).
std::optional<std::string> judge_unavailable();

// Runs every job in one node process; `work` holds the jobs and
// probability files. Throws std::runtime_error when node itself fails.
JudgeRun run_judge(std::span<const JudgeJob> jobs, const std::filesystem::path& work, int threads = 2);

// llama-perplexity's protocol run by llama.cpp itself
// (tests/llama_cpp/llama_perplexity.mjs): perplexity of `model` on `text`
// in windows of `ctx` tokens and, with a base, KLD and top-1 against it.
struct JudgePerplexity {
  double ppl = 0, kld_mean = 0, top1 = 0;
  int64_t scored = 0;
  std::string cpu_backend;
};
JudgePerplexity judge_perplexity(const std::string& model, const std::string& text, int ctx,
                                 const std::string& base = "", int threads = 2);

// qforge's logits [T, V] against llama.cpp's probabilities for the same tokens.
struct Agreement {
  double mean_kld = 0;          // mean over positions of KL(llama.cpp || qforge)
  double max_kld = 0;
  double max_abs_logprob = 0;   // max |log p_llama - log p_qforge| over entries with p_llama > 1e-4
  double ppl_qforge = 0, ppl_llama = 0;  // of tokens[1..T-1]
  double top1 = 0;              // fraction of positions with the same argmax
};
Agreement compare_with_judge(const Tensor& logits, std::span<const float> probs, std::span<const int32_t> tokens);

// Mean KL(p || q) between two llama.cpp distributions [T, V] (the judge's
// own quantized file against its own F32 file).
double judge_self_kld(std::span<const float> p, std::span<const float> q, int64_t n_vocab);
// Mean KL(softmax(a) || softmax(b)) of two qforge logit tensors [T, V].
double logits_kld(const Tensor& a, const Tensor& b);

}  // namespace qf::test
