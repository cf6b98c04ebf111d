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
  // Channels holding at least one value with |x - mean| > 6 stddev (mean and
  // stddev over every value), ordered by decreasing max |x| (then index).
  std::vector<int64_t> outlier_channels;
  // Values with |x - mean| > 6 stddev over the batches given to recount();
  // -1 until recount() was called.
  int64_t outlier_values = -1;
  // max over channels of max|x_c| divided by the median over channels of
  // max|x_c| (the mean of the two middle ones for an even count); infinite
  // when the median is 0 but the maximum is not, 1 when every value is 0.
  double max_median_ratio = 0.0;
  std::vector<float> channel_absmax;   // per channel
  std::vector<float> channel_absmean;  // per channel mean |x| (AWQ's activation magnitude)
};

namespace detail {
struct Moments {
  double n = 0, mean = 0, m2 = 0, m3 = 0, m4 = 0;  // m_k = sum (x - mean)^k
};
}  // namespace detail

// Two passes are needed for the 6-sigma count (the mean and stddev are known
// only at the end), so the collector keeps per-channel moments and a per
// channel maximum and minimum, and decides outlier channels from those:
// a channel is an outlier channel when its max or min lies beyond 6 sigma;
// outlier_values is counted exactly in a second pass by recount().
// Moments are central (mean, M2, M3, M4 in double), merged batch by batch
// with Pebay's pairwise formulas, so a large mean does not swamp the spread
// and the batch split changes the results only by rounding.
class ActivationStats {
 public:
  explicit ActivationStats(int64_t channels);  // channels > 0
  // A row-major [rows, channels] batch (rows may be 0). Throws qf::Error,
  // leaving the statistics unchanged, on a size that is not whole rows, on
  // NaN/Inf, or after recount() (the second pass needs final moments).
  void add(std::span<const float> batch);
  // Optional second pass over the same batches for the exact outlier_values
  // count, against the mean and stddev of everything add()ed. Throws
  // qf::Error as add() does, before any add(), or when more rows are
  // recounted than were added.
  void recount(std::span<const float> batch);
  // Throws qf::Error when no value was added.
  ActivationReport report() const;

 private:
  int64_t rows_of(std::span<const float> batch) const;

  int64_t channels_;
  int64_t tokens_ = 0;
  std::vector<detail::Moments> moments_;  // per channel
  std::vector<double> abssum_;
  std::vector<float> min_, max_;
  int64_t recounted_ = 0;  // rows seen by recount()
  int64_t outlier_values_ = 0;
};

}  // namespace qf::analysis
