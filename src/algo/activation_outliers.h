// The outlier report: per block and input site, the statistics of the
// activations entering the linear layers on calibration data (the float
// model), the evidence for SmoothQuant and AWQ: channels beyond 6 sigma,
// kurtosis, and the max/median ratio of per-channel maxima.
#pragma once

#include <vector>

#include "analysis/activation_stats.h"
#include "calib/calibration_set.h"
#include "model/model.h"

namespace qf::algo {

struct SiteActivationReport {
  int64_t layer = 0;
  model::InputSite site = model::InputSite::AttnIn;
  analysis::ActivationReport stats;
};

std::vector<SiteActivationReport> activation_outliers(const model::Model& model,
                                                      const std::vector<calib::TokenSequence>& sequences,
                                                      int n_threads);

}  // namespace qf::algo
