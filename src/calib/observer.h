// Calibration observers: they watch a stream of activation batches and
// propose a quantization range (and the affine parameters for a scheme), for
// the whole tensor or per channel.
//
// A batch is a row-major [tokens, channels] block of fp32 values; every batch
// of one stream must have the same channel count. Per-channel observers keep
// one summary per channel (column).
//
// Kinds:
//   MinMax         running min and max.
//   MovingAverage  per batch min and max, smoothed: r = m * r + (1 - m) * batch
//                  (the first batch initialises r).
//   Percentile     a percentile of |x| (symmetric target) or of each tail
//                  (asymmetric target), read from a streaming Histogram
//                  (see histogram.h for its accuracy).
//   Entropy        TensorRT-style KL-divergence threshold on |x| (see
//                  clipping.h); one threshold a for both signs, the range
//                  being [-a, a] cut back to the data, also for asymmetric
//                  targets (as TensorRT and ONNX Runtime do).
//   Mse            the clip minimising the expected quantization MSE under
//                  the target scheme, computed from the histogram.
// Percentile and Mse bin |x| for a symmetric target and x for an asymmetric
// one; Entropy always bins |x|. Ranges of histogram kinds never extend past
// the data's min and max (a symmetric clip is cut back to them, which does not
// change a symmetric scheme's parameters).
// Their memory is bins x 8 bytes per histogram, i.e. per channel when
// per_channel is set (4096 channels x 2048 bins = 64 MiB: consider fewer
// bins for wide per-channel observers).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "calib/clipping.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "quant/affine.h"
#include "quant/scheme.h"

namespace qf::calib {

enum class ObserverKind { MinMax, MovingAverage, Percentile, Entropy, Mse };

struct ObserverOptions {
  ObserverKind kind = ObserverKind::MinMax;
  bool per_channel = false;
  double momentum = 0.9;      // MovingAverage, in [0, 1)
  double percentile = 99.99;  // Percentile, in (0, 100]
  int histogram_bins = 2048;  // Percentile / Entropy / Mse; >= 16 (Entropy: >= 2 x 2^bits
                              // for asymmetric targets, 2 x 2^(bits-1) for symmetric ones)
  int mse_grid = 100;         // Mse: clip ratios k / mse_grid for k = 1..mse_grid
  quant::Scheme target;       // integer scheme the range is for (Entropy and Mse depend on it;
                              // Percentile uses its symmetric flag)
};

class Observer {
 public:
  explicit Observer(const ObserverOptions& options);
  virtual ~Observer() = default;
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;

  // Adds a row-major [batch.size() / channels, channels] batch. Throws
  // qf::Error (leaving the observer unchanged) on NaN or Inf values, a size
  // that is not a multiple of `channels`, or a channel count differing from
  // earlier batches. An empty batch (no rows) only fixes the channel count.
  void observe(std::span<const float> batch, int64_t channels);
  // Same, with channels = the last dimension (a 1-D tensor is one row).
  // Non-F32 float or integer tensors are converted to fp32 first.
  void observe(const Tensor& batch);

  // One range per channel (per_channel) or a single one. Throws qf::Error if
  // no value has been observed. Histogram kinds do their search here, so call
  // it once when the stream is done; with a pool, channels are searched in
  // parallel (the result does not depend on it). Per channel, the searches
  // cost about 2 ms (kl), 0.6 ms (mse, symmetric) or 2 ms (mse, asymmetric)
  // with 2048 bins.
  std::vector<Range> ranges(ThreadPool* pool = nullptr) const;

  const ObserverOptions& options() const { return options_; }
  int64_t channels() const { return channels_; }       // 0 before the first batch
  int64_t tokens_seen() const { return tokens_seen_; }  // rows over all batches
  int64_t batches_seen() const { return batches_seen_; }

 protected:
  // `data` is validated; `batch_ranges` holds the min and max of each group
  // (one per channel, or one for the whole batch). rows > 0.
  virtual void update(const float* data, int64_t rows, int64_t channels,
                      const std::vector<Range>& batch_ranges) = 0;
  // Called with at least one value observed; `pool` may be null.
  virtual std::vector<Range> compute(ThreadPool* pool) const = 0;

 private:
  ObserverOptions options_;
  int64_t channels_ = 0;
  int64_t tokens_seen_ = 0;
  int64_t batches_seen_ = 0;
};

// Validates `options` (qf::Error naming the bad field) and builds the observer.
std::unique_ptr<Observer> make_observer(const ObserverOptions& options);

// "minmax", "ema" (or "moving_average"), "percentile", "kl" (or "entropy"),
// "mse"; anything else is a qf::Error listing these.
ObserverKind parse_observer_kind(std::string_view name);
std::string_view observer_kind_name(ObserverKind kind);  // the first spelling above

// affine_params_from_range() of each range for an integer `scheme`.
std::vector<quant::AffineParams> params_for(const Observer& observer, const quant::Scheme& scheme,
                                            ThreadPool* pool = nullptr);
// Same, for the scheme the observer was tuned for (options().target).
std::vector<quant::AffineParams> params_for(const Observer& observer, ThreadPool* pool = nullptr);

}  // namespace qf::calib
