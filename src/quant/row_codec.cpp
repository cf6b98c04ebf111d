#include "quant/row_codec.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "quant/codebook.h"
#include "quant/packing.h"

namespace qf::quant {
namespace {

// Maps float bits to an int32 ordered like the floats (NaNs beyond +-Inf); self-inverse.
constexpr int32_t order_key(int32_t bits) { return bits ^ ((bits >> 31) & 0x7FFFFFFF); }
constexpr int32_t kKeyPosInf = 0x7F800000;
constexpr int32_t kKeyNegInf = order_key(static_cast<int32_t>(0xFF800000u));

}  // namespace

void fail_nonfinite(std::span<const float> values, size_t offset, int64_t row) {
  for (size_t i = 0; i < values.size(); ++i) {
    const float x = values[i];
    if (std::isfinite(x)) continue;
    const char* what = std::isnan(x) ? "NaN" : (x > 0 ? "+Inf" : "-Inf");
    if (row >= 0) fail("cannot quantize {} at row {}, column {}", what, row, offset + i);
    fail("cannot quantize {} at index {}", what, offset + i);
  }
  fail("cannot quantize non-finite values");  // not reached after a failed group_stats
}

namespace {

// Parameters from the stats of a finite group (ternary/binary look at the values).
GroupParams params_from_stats(std::span<const float> values, const GroupStats& st, const Scheme& scheme) {
  switch (scheme.format) {
    case Format::Int: return group_params_from_range(st.min, st.max, scheme);
    case Format::Ternary:
    case Format::Binary: return {choose_codebook_scale(values, scheme), 0};
    default: return {codebook_scale_from_range(-st.absmax, st.absmax, scheme), 0};
  }
}

struct RowLayout {
  int64_t groups;
  int64_t group_size;
  std::span<const float> group(std::span<const float> row, int64_t g) const {
    return row.subspan(begin(g), len(g, row.size()));
  }
  size_t begin(int64_t g) const { return static_cast<size_t>(g * group_size); }
  size_t len(int64_t g, size_t cols) const { return std::min(static_cast<size_t>(group_size), cols - begin(g)); }
};

RowLayout layout(size_t cols, size_t n_params, const Scheme& scheme) {
  const int64_t c = static_cast<int64_t>(cols);
  const RowLayout l{scheme.groups_per_row(c), scheme.values_per_scale(c)};
  QF_CHECK(static_cast<int64_t>(n_params) == l.groups, "scheme {} needs {} parameter groups for a row of {}, got {}",
           scheme.to_string(), l.groups, cols, n_params);
  return l;
}

void check_params(const GroupParams& p) {
  QF_CHECK(std::isfinite(p.scale) && p.scale > 0.0f, "quantization scale {} is not a positive finite number", p.scale);
}

}  // namespace

GroupStats group_stats(std::span<const float> values) {
  GroupStats st;
  if (values.empty()) return st;
  int32_t kmin = INT32_MAX, kmax = INT32_MIN;
  const float* p = values.data();
  const size_t n = values.size();
  for (size_t i = 0; i < n; ++i) {
    int32_t bits;
    std::memcpy(&bits, p + i, sizeof bits);
    const int32_t key = order_key(bits);
    kmin = key < kmin ? key : kmin;
    kmax = key > kmax ? key : kmax;
  }
  st.finite = kmax < kKeyPosInf && kmin > kKeyNegInf;
  if (!st.finite) return st;
  st.min = std::bit_cast<float>(order_key(kmin));
  st.max = std::bit_cast<float>(order_key(kmax));
  st.absmax = std::max(std::fabs(st.min), std::fabs(st.max));
  return st;
}

GroupParams choose_group_params(std::span<const float> values, const Scheme& scheme) {
  const GroupStats st = group_stats(values);
  if (!st.finite) fail_nonfinite(values, 0, -1);
  return params_from_stats(values, st, scheme);
}

GroupParams group_params_from_range(float lo, float hi, const Scheme& scheme) {
  if (scheme.format == Format::Int) {
    const AffineParams a = affine_params_from_range(lo, hi, scheme);
    return {a.scale, a.zero_point};
  }
  return {codebook_scale_from_range(lo, hi, scheme), 0};
}

AffineParams affine_params(const GroupParams& p, const Scheme& scheme) {
  QF_CHECK(scheme.format == Format::Int, "{} is not an integer format", format_name(scheme.format, scheme.bits));
  check_params(p);
  const CodeRange r = int_code_range(scheme.bits, scheme.symmetric, scheme.full_range);
  const int32_t zp = scheme.symmetric ? 0 : p.zero_point;
  QF_CHECK(zp >= r.qmin && zp <= r.qmax, "zero point {} outside the code range [{}, {}]", zp, r.qmin, r.qmax);
  return {p.scale, zp, r.qmin, r.qmax};
}

int32_t code_bias(const Scheme& scheme) {
  return scheme.format == Format::Int && scheme.symmetric ? int32_t{1} << (scheme.bits - 1) : 0;
}

void encode_group(std::span<const float> values, const GroupParams& p, const Scheme& scheme,
                  std::span<uint8_t> codes) {
  if (scheme.format == Format::Int) {
    affine_quantize_codes(values, affine_params(p, scheme), code_bias(scheme), codes);
  } else {
    check_params(p);
    Codebook::get(scheme.format).encode(values, p.scale, codes);
  }
}

void decode_group(std::span<const uint8_t> codes, const GroupParams& p, const Scheme& scheme,
                  std::span<float> out) {
  if (scheme.format == Format::Int) {
    affine_dequantize_codes(codes, affine_params(p, scheme), code_bias(scheme), out);
  } else {
    check_params(p);
    Codebook::get(scheme.format).decode(codes, p.scale, out);
  }
}

void fake_quantize_group(std::span<float> values, const GroupParams& p, const Scheme& scheme) {
  constexpr size_t kChunk = 256;
  uint8_t codes[kChunk];
  for (size_t base = 0; base < values.size(); base += kChunk) {
    const auto chunk = values.subspan(base, std::min(kChunk, values.size() - base));
    const auto c = std::span<uint8_t>(codes, chunk.size());
    encode_group(chunk, p, scheme, c);
    decode_group(c, p, scheme, chunk);
  }
}

float fake_quantize_value(float x, const GroupParams& p, const Scheme& scheme) {
  fake_quantize_group(std::span<float>(&x, 1), p, scheme);
  return x;
}

void choose_row_params(std::span<const float> row, const Scheme& scheme, std::span<GroupParams> params,
                       int64_t row_index) {
  const RowLayout l = layout(row.size(), params.size(), scheme);
  for (int64_t g = 0; g < l.groups; ++g) {
    const auto values = l.group(row, g);
    const GroupStats st = group_stats(values);
    if (!st.finite) fail_nonfinite(values, l.begin(g), row_index);
    params[static_cast<size_t>(g)] = params_from_stats(values, st, scheme);
  }
}

void quantize_row(std::span<const float> row, std::span<const GroupParams> params, const Scheme& scheme,
                  std::span<uint8_t> packed) {
  const RowLayout l = layout(row.size(), params.size(), scheme);
  const size_t need = packed_bytes(static_cast<int64_t>(row.size()), scheme.bits);
  QF_CHECK(packed.size() >= need, "a packed row of {} needs {} bytes, got {}", row.size(), need, packed.size());
  std::vector<uint8_t> buffer;
  std::span<uint8_t> codes = packed.first(row.size());  // 8-bit codes need no packing
  if (scheme.bits != 8) {
    buffer.resize(row.size());
    codes = buffer;
  }
  for (int64_t g = 0; g < l.groups; ++g) {
    encode_group(l.group(row, g), params[static_cast<size_t>(g)], scheme,
                 codes.subspan(l.begin(g), l.len(g, row.size())));
  }
  if (scheme.bits != 8) pack_codes(codes, scheme.bits, packed);
}

void dequantize_row(std::span<const uint8_t> packed, std::span<const GroupParams> params, const Scheme& scheme,
                    std::span<float> out) {
  const RowLayout l = layout(out.size(), params.size(), scheme);
  std::vector<uint8_t> codes(out.size());
  unpack_codes(packed, scheme.bits, codes);
  for (int64_t g = 0; g < l.groups; ++g) {
    const size_t b = l.begin(g), n = l.len(g, out.size());
    decode_group(std::span<const uint8_t>(codes).subspan(b, n), params[static_cast<size_t>(g)], scheme,
                 out.subspan(b, n));
  }
}

void fake_quantize_row(std::span<float> row, std::span<const GroupParams> params, const Scheme& scheme) {
  const RowLayout l = layout(row.size(), params.size(), scheme);
  for (int64_t g = 0; g < l.groups; ++g) {
    fake_quantize_group(row.subspan(l.begin(g), l.len(g, row.size())), params[static_cast<size_t>(g)], scheme);
  }
}

}  // namespace qf::quant
