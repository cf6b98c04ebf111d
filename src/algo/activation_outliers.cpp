#include "algo/activation_outliers.h"

#include <map>

#include "algo/block_runner.h"

namespace qf::algo {

std::vector<SiteActivationReport> activation_outliers(const model::Model& model,
                                                      const std::vector<calib::TokenSequence>& sequences,
                                                      int n_threads) {
  BlockRunner runner(model, sequences, n_threads);
  std::vector<SiteActivationReport> out;
  for (int64_t l = 0; l < model.config.n_layers; ++l) {
    const model::LayerWeights& w = model.layers[static_cast<size_t>(l)];
    std::map<model::InputSite, analysis::ActivationStats> stats;
    auto feed = [&](bool second_pass) {
      return [&, second_pass](model::InputSite site, const float* x, int64_t rows, int64_t cols) {
        analysis::ActivationStats& s = stats.try_emplace(site, cols).first->second;
        const std::span<const float> batch(x, static_cast<size_t>(rows * cols));
        if (second_pass) {
          s.recount(batch);
        } else {
          s.add(batch);
        }
      };
    };
    runner.run(w, feed(false));
    runner.run(w, feed(true));  // the exact 6-sigma count needs the final mean and sigma
    for (const auto& [site, s] : stats) out.push_back({l, site, s.report()});
    runner.advance(w);
  }
  return out;
}

}  // namespace qf::algo
