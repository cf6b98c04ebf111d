// Rotary position embedding frequencies, with every rope_scaling type
// transformers implements for the families we run: none ("default"),
// "linear", "dynamic" (NTK), "yarn", "llama3" and "longrope" (Phi-3). Computed as transformers'
// modeling_rope_utils computes them, so logits agree past the original
// context too. The runtime and the trainer both take their tables from here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace qf::model {

// "rope_type" (or the older "type") of a rope_scaling / rope_parameters
// object; "default" when neither is given.
std::string rope_type_of(const nlohmann::json& rope);

// Throws qf::Error naming the problem for a rope_scaling value the runtime
// cannot compute exactly: an unknown type (the message lists the supported
// ones), a missing or non-positive factor, llama3 without its frequency
// factors. Null is valid (plain RoPE).
void check_rope_scaling(const nlohmann::json& rope_scaling, int64_t max_positions);

struct RopeFrequencies {
  std::vector<double> inv_freq;   // head_dim / 2 angular frequencies per position
  double attention_factor = 1.0;  // yarn scales cos and sin by this
};

// The frequencies of a layer's RoPE for a forward pass whose largest position
// is seq_len - 1 (only "dynamic" depends on it: beyond max_position_embeddings
// its base grows with seq_len). `sliding` picks the local layers' base where
// the model has one (Gemma 3's rope_local_theta), which never scales.
RopeFrequencies rope_frequencies(const ModelConfig& c, bool sliding, int64_t seq_len);
// Whether the frequencies depend on seq_len (so tables must be rebuilt):
// "dynamic", and "longrope", which switches from its short to its long
// factors once seq_len passes original_max_position_embeddings.
bool rope_depends_on_length(const ModelConfig& c);
// longrope: the cos/sin scale (attention_factor, else transformers' default
// sqrt(1 + ln f / ln original) with f = max_positions / original), and the
// per-frequency divisors of the short or long set.
double longrope_attention_factor(const ModelConfig& c);
std::vector<float> longrope_factors(const ModelConfig& c, bool long_context);

// llama.cpp's form of a per-frequency scaling (its rope_freqs tensor): the
// divisor of each plain frequency, plain / scaled, head_dim / 2 of them.
std::vector<float> rope_frequency_divisors(const ModelConfig& c);
// The llama3 rope_scaling whose frequencies are the plain ones divided by
// `divisors` (a GGUF's rope_freqs, which llama.cpp's converter writes instead
// of the parameters). Only two combinations of low/high_freq_factor and the
// original context are observable, so low_freq_factor is set to 1 unless
// Llama 3.1's published values (1, 4, 8192) fit. Throws qf::Error when no
// llama3 scaling reproduces the divisors to 1e-5.
nlohmann::json llama3_rope_from_divisors(const ModelConfig& c, const std::vector<float>& divisors);

}  // namespace qf::model
