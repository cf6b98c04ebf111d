#include "file_text.h"
#include "judge.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

namespace qf::test {
namespace {

namespace fs = std::filesystem;

const fs::path kJudgeDir = fs::path(QF_SOURCE_DIR) / "tests" / "llama_cpp";

// Log-softmax of one row in double, so tiny probabilities keep their logs.
std::vector<double> log_softmax(const float* logits, int64_t n) {
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<double>(logits[i]) - lse;
  return out;
}

}  // namespace

std::optional<std::string> judge_unavailable() {
  if (std::system("node --version > /dev/null 2>&1") != 0) return "node is not installed";
  if (!fs::exists(kJudgeDir / "node_modules" / "node-llama-cpp" / "package.json"))
    return "node-llama-cpp is not installed: run npm ci --ignore-scripts --prefix tests/llama_cpp";
  if (!fs::exists(kJudgeDir / "node_modules" / "@node-llama-cpp" / "linux-x64"))
    return "node-llama-cpp's prebuilt linux-x64 binaries (@node-llama-cpp/linux-x64) are not installed";
  return std::nullopt;
}

JudgeRun run_judge(std::span<const JudgeJob> jobs, const fs::path& work, int threads) {
  nlohmann::json spec = {{"threads", threads}, {"jobs", nlohmann::json::array()}};
  for (size_t i = 0; i < jobs.size(); ++i) {
    nlohmann::json j = {{"model", jobs[i].model}};
    if (!jobs[i].tokens.empty()) {
      j["tokens"] = jobs[i].tokens;
      j["probs_out"] = (work / ("judge_" + std::to_string(i) + ".f32")).string();
    }
    if (jobs[i].text) j["text_file"] = *jobs[i].text;
    spec["jobs"].push_back(j);
  }
  const fs::path spec_path = work / "judge_jobs.json", out_path = work / "judge_result.json",
                 err_path = work / "judge_stderr.txt";
  std::ofstream(spec_path) << spec.dump();
  const std::string cmd = "node " + (kJudgeDir / "llama_judge.mjs").string() + " " + spec_path.string() + " > " +
                          out_path.string() + " 2> " + err_path.string();
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error("llama.cpp judge failed: " + cmd + "\n" + read_file(err_path));
  const nlohmann::json r = nlohmann::json::parse(read_file(out_path));
  JudgeRun run;
  run.node_llama_cpp = r["llama_cpp"].value("node_llama_cpp", "?");
  run.llama_cpp_release = r["llama_cpp"].value("release", "?");
  run.cpu_backend = r["llama_cpp"].value("cpu_backend", "?");
  for (size_t i = 0; i < jobs.size(); ++i) {
    const nlohmann::json& x = r["results"].at(i);
    JudgeResult res;
    res.ok = x.value("ok", false);
    res.error = x.value("error", "");
    if (x.contains("tokens")) res.tokenized = x["tokens"].get<std::vector<int32_t>>();
    if (res.ok && !jobs[i].tokens.empty()) {
      res.n_vocab = x.value("n_vocab", int64_t{0});
      const std::string bytes = read_file(spec["jobs"][i]["probs_out"].get<std::string>());
      res.probs.resize(bytes.size() / sizeof(float));
      std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(res.probs.data()));
      if (res.probs.size() != jobs[i].tokens.size() * static_cast<size_t>(res.n_vocab))
        throw std::runtime_error("llama.cpp judge wrote " + std::to_string(res.probs.size()) + " probabilities for " +
                                 jobs[i].model);
    }
    run.results.push_back(std::move(res));
  }
  return run;
}

JudgePerplexity judge_perplexity(const std::string& model, const std::string& text, int ctx, const std::string& base,
                                 int threads) {
  const fs::path out = fs::temp_directory_path() / ("qf_judge_ppl_" + std::to_string(::getpid()) + ".json");
  const std::string cmd = "node " + (kJudgeDir / "llama_perplexity.mjs").string() + " " + model + " " + text + " " +
                          std::to_string(ctx) + " " + (base.empty() ? "''" : base) + " " + std::to_string(threads) +
                          " > " + out.string();
  const int rc = std::system(cmd.c_str());
  const std::string body = read_file(out);
  fs::remove(out);
  if (rc != 0) throw std::runtime_error("llama.cpp perplexity failed: " + cmd);
  const nlohmann::json j = nlohmann::json::parse(body);
  JudgePerplexity p;
  p.ppl = j.at("ppl").get<double>();
  p.scored = j.at("scored").get<int64_t>();
  p.kld_mean = j["kld_mean"].is_null() ? 0.0 : j["kld_mean"].get<double>();
  p.top1 = j["top1"].is_null() ? 0.0 : j["top1"].get<double>();
  p.cpu_backend = j.value("cpu_backend", "?");
  return p;
}

Agreement compare_with_judge(const Tensor& logits, std::span<const float> probs, std::span<const int32_t> tokens) {
  const int64_t T = logits.dim(0), V = logits.dim(1);
  if (static_cast<int64_t>(tokens.size()) != T || static_cast<int64_t>(probs.size()) != T * V)
    throw std::runtime_error("qforge logits and llama.cpp probabilities have different shapes");
  Agreement a;
  double nll_q = 0, nll_l = 0;
  int64_t same_top = 0;
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<double> lq = log_softmax(logits.data<float>() + t * V, V);
    const float* p = probs.data() + t * V;
    double kl = 0;
    int64_t arg_q = 0, arg_l = 0;
    for (int64_t i = 0; i < V; ++i) {
      const double pl = p[i];
      if (pl > 0) kl += pl * (std::log(pl) - lq[static_cast<size_t>(i)]);
      if (pl > 1e-4) a.max_abs_logprob = std::max(a.max_abs_logprob, std::abs(std::log(pl) - lq[static_cast<size_t>(i)]));
      if (lq[static_cast<size_t>(i)] > lq[static_cast<size_t>(arg_q)]) arg_q = i;
      if (p[i] > p[arg_l]) arg_l = i;
    }
    kl = std::max(kl, 0.0);  // float rounding of probabilities summing to 1 +- 1e-6
    a.mean_kld += kl / static_cast<double>(T);
    a.max_kld = std::max(a.max_kld, kl);
    same_top += arg_q == arg_l;
    if (t + 1 < T) {
      const int32_t next = tokens[static_cast<size_t>(t + 1)];
      nll_q -= lq[static_cast<size_t>(next)];
      nll_l -= std::log(std::max(static_cast<double>(p[next]), 1e-45));
    }
  }
  a.ppl_qforge = std::exp(nll_q / static_cast<double>(T - 1));
  a.ppl_llama = std::exp(nll_l / static_cast<double>(T - 1));
  a.top1 = static_cast<double>(same_top) / static_cast<double>(T);
  return a;
}

double judge_self_kld(std::span<const float> p, std::span<const float> q, int64_t n_vocab) {
  const int64_t T = static_cast<int64_t>(p.size()) / n_vocab;
  double sum = 0;
  for (int64_t t = 0; t < T; ++t) {
    double kl = 0;
    for (int64_t i = 0; i < n_vocab; ++i) {
      const double a = p[static_cast<size_t>(t * n_vocab + i)], b = q[static_cast<size_t>(t * n_vocab + i)];
      if (a > 0) kl += a * (std::log(a) - std::log(std::max(b, 1e-45)));
    }
    sum += std::max(kl, 0.0);
  }
  return sum / static_cast<double>(T);
}

double logits_kld(const Tensor& a, const Tensor& b) {
  const int64_t T = a.dim(0), V = a.dim(1);
  double sum = 0;
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<double> la = log_softmax(a.data<float>() + t * V, V), lb = log_softmax(b.data<float>() + t * V, V);
    double kl = 0;
    for (int64_t i = 0; i < V; ++i) kl += std::exp(la[static_cast<size_t>(i)]) * (la[static_cast<size_t>(i)] - lb[static_cast<size_t>(i)]);
    sum += std::max(kl, 0.0);
  }
  return sum / static_cast<double>(T);
}

}  // namespace qf::test
