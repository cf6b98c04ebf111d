// From a calibration text file to the token sequences a pipeline runs:
// tokenized as one document (BOS first where the vocabulary has one), then
// windows chosen at random or for diversity (k-means over each candidate
// window's mean final hidden state in the float model, one window per
// cluster, from a pool of up to 4x as many random windows).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "calib/calibration_set.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace qf::algo {

enum class Selection { Random, Diverse };
Selection parse_selection(std::string_view name);  // "random" | "diverse"

// Throws qf::Error naming the file when it cannot be read or holds no text.
std::vector<int32_t> read_calibration_tokens(const std::string& path, const tokenizer::Tokenizer& tok);

std::vector<calib::TokenSequence> select_calibration(const model::Model& model, const std::vector<int32_t>& tokens,
                                                     int64_t count, int64_t length, Selection selection,
                                                     uint64_t seed, int n_threads);

}  // namespace qf::algo
