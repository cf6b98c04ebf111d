#include "algo/importance.h"

#include <array>

#include "algo/block_runner.h"
#include "core/error.h"
#include "model/linear_layers.h"

namespace qf::algo {

std::map<std::string, std::vector<float>> input_mean_squares(const model::Model& m,
                                                             const std::vector<calib::TokenSequence>& calibration,
                                                             int n_threads) {
  QF_CHECK(!calibration.empty(), "importance weights need calibration sequences");
  BlockRunner runner(m, calibration, n_threads);
  std::map<std::string, std::vector<float>> out;
  for (int64_t l = 0; l < m.config.n_layers; ++l) {
    const model::LayerWeights& w = m.layers[static_cast<size_t>(l)];
    std::array<std::vector<double>, model::kInputSites> sums;
    std::array<int64_t, model::kInputSites> tokens{};
    runner.run(w, [&](model::InputSite site, const float* x, int64_t rows, int64_t cols) {
      auto& s = sums[static_cast<size_t>(site)];
      s.resize(static_cast<size_t>(cols), 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j) s[static_cast<size_t>(j)] += static_cast<double>(x[r * cols + j]) * x[r * cols + j];
      tokens[static_cast<size_t>(site)] += rows;
    });
    for (const model::LinearLayer& ll : model::block_linears(m.config, l)) {
      const auto i = static_cast<size_t>(ll.site);
      QF_CHECK(tokens[i] > 0 && static_cast<int64_t>(sums[i].size()) == ll.in_features,
               "no calibration inputs reached {}", ll.name);
      std::vector<float> v(sums[i].size());
      for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<float>(sums[i][j] / static_cast<double>(tokens[i]));
      out[ll.name + ".weight"] = std::move(v);
    }
    if (l + 1 < m.config.n_layers) runner.advance(w);
  }
  return out;
}

}  // namespace qf::algo
