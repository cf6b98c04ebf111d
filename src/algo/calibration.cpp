#include "algo/calibration.h"

#include <fstream>
#include <sstream>

#include "algo/block_runner.h"
#include "core/error.h"

namespace qf::algo {

Selection parse_selection(std::string_view name) {
  if (name == "random") return Selection::Random;
  if (name == "diverse") return Selection::Diverse;
  fail("unknown calibration selection '{}' (valid: random, diverse)", name);
}

std::vector<int32_t> read_calibration_tokens(const std::string& path, const tokenizer::Tokenizer& tok) {
  std::ifstream in(path, std::ios::binary);
  QF_CHECK(in.good(), "{}: cannot open the calibration text", path);
  std::stringstream ss;
  ss << in.rdbuf();
  QF_CHECK(!in.bad(), "{}: read error", path);
  const std::string text = ss.str();
  QF_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, "{}: the calibration text is empty", path);
  return tok.encode(text, /*add_bos=*/true);
}

std::vector<calib::TokenSequence> select_calibration(const model::Model& model, const std::vector<int32_t>& tokens,
                                                     int64_t count, int64_t length, Selection selection,
                                                     uint64_t seed, int n_threads) {
  QF_CHECK(length <= model.config.max_positions || model.config.arch == model::Architecture::Llama,
           "--calib-seqlen {} exceeds the model's {} positions", length, model.config.max_positions);
  if (selection == Selection::Random) return calib::sample_sequences(tokens, count, length, seed);
  const int64_t available = static_cast<int64_t>(tokens.size()) / std::max<int64_t>(length, 1);
  const int64_t pool_size = std::max(count, std::min(4 * count, available));
  std::vector<calib::TokenSequence> pool = calib::sample_sequences(tokens, pool_size, length, seed);
  if (pool_size == count) return pool;
  BlockRunner runner(model, pool, n_threads);
  for (const auto& layer : model.layers) runner.advance(layer);
  const int64_t H = model.config.hidden_size;
  std::vector<float> features(static_cast<size_t>(pool_size * H), 0.0f);
  for (int64_t i = 0; i < pool_size; ++i) {
    const Tensor& h = runner.hidden()[static_cast<size_t>(i)];
    const float* d = h.data<float>();
    for (int64_t t = 0; t < h.dim(0); ++t)
      for (int64_t j = 0; j < H; ++j) features[static_cast<size_t>(i * H + j)] += d[t * H + j] / static_cast<float>(h.dim(0));
  }
  std::vector<calib::TokenSequence> out;
  for (int64_t i : calib::select_diverse(features, pool_size, H, count, seed)) out.push_back(pool[static_cast<size_t>(i)]);
  return out;
}

}  // namespace qf::algo
