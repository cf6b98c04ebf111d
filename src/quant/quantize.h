// The quantize / dequantize API: a float tensor in, packed codes plus scales
// (and zero points) out, and back.
//
// The tensor is viewed as [rows, cols] with cols = its last dimension (a 1-D
// tensor is one row, a scalar one value); groups run along cols (see
// quant/row_codec.h for the group layout and the code conventions).
//
// Storage of a QuantizedTensor:
//   codes        U8 [rows, packed_bytes(cols, bits)], each row byte-aligned (quant/packing.h)
//   scales       [rows, groups_per_row(cols)]; Tensor granularity: [1, 1], one
//                scale for every row. dtype by scheme.scale_format:
//                  F32 -> F32;  F16 -> F16;  Pow2 -> I8 exponents e, scale = 2^e
//                  (e in [-128, 127], like the E8M0 scales of the OCP MX formats)
//   zero_points  U8 of the scales' shape, asymmetric integer schemes only
//                (the integer q with x' = scale * (q - zero_point)); else empty
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "quant/row_codec.h"
#include "quant/scheme.h"

namespace qf::quant {

struct QuantizedTensor {
  Scheme scheme;
  Shape shape;          // original shape; viewed as [rows, cols] with cols = last dim
  Tensor codes;         // U8, packed codes, each row byte-aligned
  Tensor scales;        // see above
  Tensor zero_points;   // asymmetric int only, else empty

  int64_t rows() const;
  int64_t cols() const;
  size_t storage_bytes() const;    // codes + scales + zero points
  double bits_per_weight() const;  // storage_bytes * 8 / numel (0 for an empty tensor)
  // Checks that shapes and dtypes agree with the scheme (for tensors read from
  // files); throws qf::Error naming the mismatch.
  void validate() const;
};

// Parameters of every scale group of a tensor, row-major [rows, groups].
// Tensor granularity: one entry (rows = groups = 1), shared by every row.
struct ParamGrid {
  int64_t rows = 0;
  int64_t groups = 0;
  std::vector<GroupParams> params;

  std::span<const GroupParams> row(int64_t r) const;
  std::span<GroupParams> row(int64_t r);
};

// Parameters the scheme picks for `weights` (any float dtype); throws
// qf::Error on NaN/Inf, naming row and column.
ParamGrid choose_params(const Tensor& weights, const Scheme& scheme);

// Any float dtype input (non-F32 is converted first).
QuantizedTensor quantize(const Tensor& weights, const Scheme& scheme);
// With given parameters (e.g. clipped ranges, GPTQ): scales are rounded up to
// the scheme's scale format as stored; zero points must lie in the code range.
QuantizedTensor quantize(const Tensor& weights, const Scheme& scheme, const ParamGrid& params);
// F32 tensor of the original shape.
Tensor dequantize(const QuantizedTensor& q);
// The same values written to `out` (numel floats, row-major), for callers that
// reuse a buffer.
void dequantize_into(const QuantizedTensor& q, std::span<float> out);
// The stored parameters, decoded (pow2 exponents and fp16 to float).
ParamGrid stored_params(const QuantizedTensor& q);

// dequantize(quantize(weights, scheme)) as an F32 tensor, computed without packing.
Tensor fake_quantize(const Tensor& weights, const Scheme& scheme);
Tensor fake_quantize(const Tensor& weights, const Scheme& scheme, const ParamGrid& params);

}  // namespace qf::quant
