// Tiny random-weight Hugging Face models made by transformers itself
// (tests/runtime/transformers_reference.py, from a config dict, never the
// hub), with transformers' logits for a token sequence: the reference forward
// pass of every architecture, and a source of HF folders for the GGUF judges.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "numpy_python.h"

namespace qf::test {

struct TransformersModel {
  std::string error;          // non-empty when the script failed (its output)
  std::vector<float> logits;  // [tokens, vocab] from transformers' forward pass
};

// Runs transformers_reference.py on `spec` (written next to `folder`) and reads
// the logits it leaves in `folder`.
inline TransformersModel run_transformers_reference(const nlohmann::json& spec, const std::string& folder,
                                                    size_t n_logits) {
  TransformersModel out;
  const std::string spec_path = folder + ".spec.json";
  std::ofstream(spec_path) << spec.dump();
  const std::string command = transformers_python() + " '" + std::string(QF_SOURCE_DIR) +
                              "/tests/runtime/transformers_reference.py' '" + spec_path + "' '" + folder + "' 2>&1";
  const ShellResult r = run_shell(command);
  if (r.status != 0) {
    out.error = command + "\n" + r.output;
    return out;
  }
  out.logits.resize(n_logits);
  std::ifstream f(folder + "/logits.f32", std::ios::binary);
  f.read(reinterpret_cast<char*>(out.logits.data()), static_cast<std::streamsize>(out.logits.size() * sizeof(float)));
  if (!f.good()) out.error = "could not read " + folder + "/logits.f32";
  return out;
}

// Saves the model of `config` (AutoConfig.for_model kwargs with
// "model_type") into `folder` and returns transformers' logits on `tokens`.
// Needs transformers_python() non-empty.
inline TransformersModel make_transformers_model(const nlohmann::json& config, const std::vector<int32_t>& tokens,
                                                 int64_t vocab, const std::string& folder, int seed = 7) {
  return run_transformers_reference(nlohmann::json{{"config", config}, {"tokens", tokens}, {"seed", seed}}, folder,
                                    tokens.size() * static_cast<size_t>(vocab));
}

// transformers' logits on `tokens` of the model saved in `folder` (one qforge
// wrote: loaded with from_pretrained).
inline TransformersModel transformers_logits(const std::string& folder, const std::vector<int32_t>& tokens,
                                             int64_t vocab) {
  return run_transformers_reference(nlohmann::json{{"load", true}, {"tokens", tokens}}, folder,
                                    tokens.size() * static_cast<size_t>(vocab));
}

}  // namespace qf::test
