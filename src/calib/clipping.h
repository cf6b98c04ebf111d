// Clipping-range searches on a calibration histogram: percentile, entropy
// (KL divergence, TensorRT style) and expected-MSE minimisation. Each returns
// the range in the histogram's own domain: [lo, hi] for a Signed histogram,
// [-a, a] for a Magnitude (|x|) one. They need a non-empty histogram.
// Entropy works on magnitudes only: like TensorRT's and ONNX Runtime's, it
// finds one threshold for both signs.
#pragma once

#include <cstdint>

#include "calib/histogram.h"
#include "quant/affine.h"
#include "quant/scheme.h"

namespace qf::calib {

struct Range {
  float lo = 0.0f;
  float hi = 0.0f;
  bool operator==(const Range&) const = default;
};

// Percentile in (0, 100]. Magnitude: a = that percentile of |x|. Signed: lo is
// the (100 - percentile)-th and hi the percentile-th percentile of x, so each
// tail loses (100 - percentile)% of the values.
Range percentile_clip(const Histogram& h, double percentile);

// Number of magnitude levels the entropy search re-quantizes |x| into: the
// codes one side of zero gets, 2^(bits-1) (TensorRT's 128 for int8); 2^bits
// for an asymmetric scheme when the data has a single sign (the whole code
// range then lies on that side).
int entropy_levels(const quant::Scheme& scheme, bool one_sided = false);

// TensorRT's entropy calibration on a Magnitude (|x|) histogram: the threshold
// edge(i), i in [levels, bins], minimising KL(P || Q), where P is bins [0, i)
// with the mass beyond folded into bin i - 1, and Q is bins [0, i) without
// that mass merged into `levels` equal groups, each group's mass spread evenly
// over the bins where P is non-zero; both normalised. Q misses the clipped
// mass, which is what makes low thresholds costly. (Building Q from P itself
// would give KL = 0 at i = levels, where every group is a single bin.)
// Thresholds where a group of Q is empty but P is not are skipped (infinite
// KL). Each candidate costs O(levels) thanks to prefix sums. Returns [-a, a].
Range entropy_clip(const Histogram& h, int levels);

// Expected squared quantization error per value of the histogram's values
// under `params`: each bin's count is spread uniformly over the bin (clipped
// to the exact data min/max) and the error is integrated exactly over the
// quantizer's steps. For a Magnitude histogram this is the error of the
// positive values |x|.
double histogram_mse(const Histogram& h, const quant::AffineParams& params);

// Grid search for the range minimising histogram_mse() under `scheme`
// (integer format; bits, symmetric, full_range, scale format).
// Magnitude: [-r a, r a] with a = max |x| and r = k / grid, k = 1..grid.
// Signed: first [r lo, r hi] over the same grid with lo/hi the data min/max,
// then the upper end alone and the lower end alone are searched over the grid
// with the other end fixed (this finds one-sided clips of skewed data).
// Each grid search is followed by 20 finer steps either side of its best
// ratio (the grid is coarse when a few outliers set a, e.g. 0.5 for a = 50).
// Ties keep the wider range.
Range mse_clip(const Histogram& h, const quant::Scheme& scheme, int grid);

}  // namespace qf::calib
