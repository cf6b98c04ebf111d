// Gathers everything `qforge report` shows into one JSON document: the page
// (report/html.h) is rendered from exactly this data, and `--json` writes it.
// Schema (version 1), every array in the order the page draws it:
//   model       {path, model_type, layers, hidden, vocab, params}
//   text        {path, tokens: T (BOS first, capped), scored: T - 1}
//   settings    {max_tokens, bins, top_k, layer_kld_tokens}
//   tokens      [T ids];  pieces {id: text} for every id shown
//   baseline    {nll: [T-1], top_ids: [T-1][k], top_probs: [T-1][k]}   (fp32 on the text)
//   models      [{name, path, method, bits_per_weight, bytes,
//                 summary {kld_mean, kld_p99, kld_max, top1_agreement, perplexity, baseline_perplexity},
//                 kld: [T-1], top_ids, top_probs,
//                 layers: [{name, block, kind, site, scheme|null, bits|null, bits_per_weight,
//                           sqnr_db|null (exact), mse, kld|null}]}]
//   weights     [{name, block, kind, shape, stats {mean, std, kurtosis, outliers_6sd},
//                 hist {lo, width, counts, min, max}, grids: [per model: levels | null]}]
//   activations [{block, site, channels, hist, grids: [per model: static levels, or [] ],
//                 kurtosis, absmax, max_median_ratio, outlier_channels, channel_absmax}]
// Row t of the per-token arrays is the prediction of tokens[t + 1].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qf::report {

struct ReportOptions {
  std::string model;                 // the fp32 reference
  std::vector<std::string> compare;  // quantized folders (any model::load_quantized layout)
  std::string text;                  // UTF-8 text the token view and KLDs use
  int64_t max_tokens = 512;          // tokens of the text (BOS included), capped by the context
  int bins = 64;                     // histogram bins
  int top_k = 5;
  int64_t layer_kld_tokens = 128;    // tokens for the per-layer KLD contributions; 0: skip them
  int n_threads = 0;
};

// Throws qf::Error naming the file for unreadable inputs, a compared model
// that is not a quantized version of `model`, or a text with no scored token.
nlohmann::ordered_json collect_report(const ReportOptions& options);

}  // namespace qf::report
