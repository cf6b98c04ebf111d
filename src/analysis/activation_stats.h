// Activation outlier statistics of one linear layer's input, streamed over
// calibration batches: the evidence that motivates SmoothQuant and AWQ
// (a few channels far larger than the rest).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace qf::analysis {

struct ActivationReport {
  int64_t channels = 0;
  int64_t tokens = 0;
  double mean = 0.0, stddev = 0.0;  // over every value
  double kurtosis = 0.0;            // excess-free (normal = 3), over every value
  double absmax = 0.0;
  // Channels holding at least one value with |x - mean| > 6 stddev, ordered
  // by decreasing max |x|, and that count.
  std::vector<int64_t> outlier_channels;
  int64_t outlier_values = 0;
  // max over channels of max|x_c| divided by the median over channels of max|x_c|.
  double max_median_ratio = 0.0;
  std::vector<float> channel_absmax;   // per channel
  std::vector<float> channel_absmean;  // per channel mean |x| (AWQ's activation magnitude)
};

// Two passes are needed for the 6-sigma count (the mean and stddev are known
// only at the end), so the collector keeps per-channel moments and a per
// channel maximum and minimum, and counts outliers per channel from those:
// a channel is an outlier channel when its max or min lies beyond 6 sigma;
// outlier_values is counted exactly in a second pass by recount().
class ActivationStats {
 public:
  explicit ActivationStats(int64_t channels);
  // A row-major [rows, channels] batch. Throws qf::Error on a size mismatch or NaN/Inf.
  void add(std::span<const float> batch);
  // Optional second pass over the same batches for the exact outlier_values count.
  void recount(std::span<const float> batch);
  ActivationReport report() const;

 private:
  int64_t channels_;
  int64_t tokens_ = 0;
  std::vector<double> sum_, sum2_, sum3_, sum4_, abssum_;
  std::vector<float> min_, max_;
  int64_t recounted_ = 0;
};

}  // namespace qf::analysis
