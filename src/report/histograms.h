// Distributions the report draws: per weight matrix and per activation site
// a fixed-bin histogram (calib::Histogram, exact rebinning), the quantization
// grid to draw on it, and per site the per-channel maxima of the outlier
// heatmap (analysis::ActivationStats).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "analysis/activation_stats.h"
#include "model/model.h"
#include "quant/quantize.h"

namespace qf::report {

struct HistogramData {
  double lo = 0;     // lower edge of bin 0
  double width = 0;  // bin width (0: every value was 0; counts are then all 0)
  std::vector<uint64_t> counts;
  double min = 0, max = 0;  // exact extremes of the data
  uint64_t total = 0;
};

// `bins` >= 2 equal-width bins over the finite values (NaN/Inf are left out).
HistogramData histogram_of(std::span<const float> values, int bins);

// The values a quantized tensor can reconstruct in its first scale group
// (row 0, group 0): the grid its weights were rounded to, ascending and
// distinct. Integers: scale * (q - zero_point) over the code range (the unused
// code of the restricted symmetric range left out); codebooks: scale * table.
std::vector<float> first_group_levels(const quant::QuantizedTensor& q);

// The levels of a static per-tensor activation quantizer; empty for dynamic
// or absent ones (their scale changes token by token).
std::vector<float> activation_levels(const model::ActivationQuant& a);

struct SiteActivations {
  int64_t block = 0;
  model::InputSite site = model::InputSite::AttnIn;
  HistogramData hist;
  analysis::ActivationReport stats;  // channel_absmax, outlier_channels, kurtosis
};

// The inputs of every linear-layer site of every block of `model` on
// `tokens` (one forward pass with the runtime's linear-input hook), block by
// block in site order.
std::vector<SiteActivations> site_activations(const model::Model& model, std::span<const int32_t> tokens, int bins,
                                              int n_threads);

}  // namespace qf::report
