// Quantization of one scale group and of one row with explicit parameters: the
// pieces quantize() (quant/quantize.h) is built from, for algorithms such as
// GPTQ, AWQ or clipping searches that choose or adjust parameters themselves.
//
// A row of `cols` values has scheme.groups_per_row(cols) groups: group g covers
// columns [g * G, min((g + 1) * G, cols)) with G = scheme.values_per_scale(cols),
// so the last group may be shorter. Tensor and Channel granularity have one
// group per row (for Tensor, every row gets the same parameters).
//
// Unpacked codes are one byte each: symmetric integers store q + 2^(b-1)
// (q = code - 2^(b-1); with the restricted range code 0 is unused),
// asymmetric integers store q itself, codebooks their table code
// (quant/codebook.h). Packed rows follow quant/packing.h.
//
// These functions expect finite values: NaN or Inf passed here are not
// reported (integers clamp them, NaN to the lowest code); quantize() and
// choose_*_params() check and throw.
#pragma once

#include <cstdint>
#include <span>

#include "quant/affine.h"
#include "quant/scheme.h"

namespace qf::quant {

// Parameters of one scale group. `scale` is the value stored and used (already
// rounded to the scheme's scale format, > 0); `zero_point` is meaningful for
// asymmetric integer schemes only (0 otherwise).
struct GroupParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  bool operator==(const GroupParams&) const = default;
};

// One vectorized pass over a group: min, max, max |x|, and whether every value
// is finite (min/max/absmax are meaningless otherwise). Empty: all 0, finite.
struct GroupStats {
  float min = 0.0f;
  float max = 0.0f;
  float absmax = 0.0f;
  bool finite = true;
};
GroupStats group_stats(std::span<const float> values);

// Parameters the scheme picks for a group: integers from [min, max] (symmetric:
// absmax), nf4/fp4/fp8 from the absmax, ternary/binary by their MSE rules.
// Throws qf::Error on NaN/Inf.
GroupParams choose_group_params(std::span<const float> values, const Scheme& scheme);
// Parameters covering [lo, hi], for clipping searches: integers via
// affine_params_from_range, codebooks map max(|lo|, |hi|) onto the table's max.
GroupParams group_params_from_range(float lo, float hi, const Scheme& scheme);

// The affine parameters of an integer scheme's group, and the code bias
// (2^(b-1) for symmetric integers, else 0) that makes stored codes unsigned.
AffineParams affine_params(const GroupParams& p, const Scheme& scheme);
int32_t code_bias(const Scheme& scheme);

// One group with given parameters, to unpacked codes and back.
void encode_group(std::span<const float> values, const GroupParams& p, const Scheme& scheme,
                  std::span<uint8_t> codes);
void decode_group(std::span<const uint8_t> codes, const GroupParams& p, const Scheme& scheme,
                  std::span<float> out);
// values <- decode(encode(values)), in place.
void fake_quantize_group(std::span<float> values, const GroupParams& p, const Scheme& scheme);
float fake_quantize_value(float x, const GroupParams& p, const Scheme& scheme);

// Throws qf::Error naming the first NaN/Inf in `values`, at column
// offset + i of row `row` ("cannot quantize NaN at row 3, column 17"; row < 0:
// "at index 17"). Call it after group_stats() reported a non-finite value.
[[noreturn]] void fail_nonfinite(std::span<const float> values, size_t offset, int64_t row);

// One row; `params` has groups_per_row(cols) entries. choose_row_params throws
// qf::Error naming the column (and `row_index`, when >= 0) of a NaN/Inf; for
// Tensor granularity it picks parameters for this row alone (quantize() uses
// the whole tensor instead).
void choose_row_params(std::span<const float> row, const Scheme& scheme, std::span<GroupParams> params,
                       int64_t row_index = -1);
// Encodes and packs a row into packed_bytes(cols, scheme.bits) bytes.
void quantize_row(std::span<const float> row, std::span<const GroupParams> params, const Scheme& scheme,
                  std::span<uint8_t> packed);
// Unpacks and decodes out.size() values.
void dequantize_row(std::span<const uint8_t> packed, std::span<const GroupParams> params, const Scheme& scheme,
                    std::span<float> out);
void fake_quantize_row(std::span<float> row, std::span<const GroupParams> params, const Scheme& scheme);

}  // namespace qf::quant
