#include "quant/codebook.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/float_formats.h"
#include "quant/affine.h"

namespace qf::quant {
namespace {

enum class Ties { ToEven, TowardZero };

// Largest float t with (x > t) <=> "x belongs above the midpoint of a < b",
// for every float x: exact midpoint in double, ties resolved by `up`.
float threshold_between(float a, float b, bool up) {
  const double mid = (static_cast<double>(a) + static_cast<double>(b)) / 2.0;
  float t = static_cast<float>(mid);
  if (static_cast<double>(t) > mid) t = std::nextafter(t, -std::numeric_limits<float>::infinity());
  if (static_cast<double>(t) == mid && up) t = std::nextafter(t, -std::numeric_limits<float>::infinity());
  return t;
}

constexpr size_t kRankChunk = 64;

}  // namespace

Codebook::Codebook(Format format) : format_(format), bits_(format_fixed_bits(format)) {
  QF_CHECK(format != Format::Int, "integer formats have no codebook");
  values_.assign(size_t{1} << bits_, 0.0f);
  Ties ties = Ties::TowardZero;
  switch (format) {
    case Format::NF4:
      std::copy(kNF4Values.begin(), kNF4Values.end(), values_.begin());
      break;
    case Format::FP4:
      // S.EE.M, exponent bias 1; E = 0 is subnormal (0 or 0.5).
      for (uint32_t c = 0; c < 16; ++c) {
        const uint32_t e = (c >> 1) & 3, m = c & 1;
        const float mag = e == 0 ? 0.5f * static_cast<float>(m)
                                 : std::ldexp(1.0f + 0.5f * static_cast<float>(m), static_cast<int>(e) - 1);
        values_[c] = (c & 8) ? -mag : mag;
      }
      sign_magnitude_ = true;
      ties = Ties::ToEven;
      break;
    case Format::FP8E4M3:
      for (uint32_t c = 0; c < 256; ++c) values_[c] = f8e4m3_to_f32(static_cast<uint8_t>(c));
      break;
    case Format::FP8E5M2:
      for (uint32_t c = 0; c < 256; ++c) values_[c] = f8e5m2_to_f32(static_cast<uint8_t>(c));
      break;
    case Format::Ternary: values_ = {-1.0f, 0.0f, 1.0f, 0.0f}; break;
    case Format::Binary: values_ = {-1.0f, 1.0f}; break;
    case Format::Int: break;
  }
  for (float v : values_) {
    if (std::isfinite(v)) max_abs_ = std::max(max_abs_, std::fabs(v));
  }
  if (bits_ > 4) return;  // fp8 encodes through core/float_formats

  // Distinct values (of the magnitudes for sign-magnitude tables), each with its
  // first code: fp4 -0 and ternary's unused code 3 drop out.
  std::vector<std::pair<float, uint8_t>> sorted;
  for (uint32_t c = 0; c < values_.size(); ++c) {
    const float v = values_[c];
    if (sign_magnitude_ && std::signbit(v)) continue;
    const bool seen = std::any_of(sorted.begin(), sorted.end(), [&](const auto& p) { return p.first == v; });
    if (!seen) sorted.emplace_back(v, static_cast<uint8_t>(c));
  }
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    // Every small table numbers its (magnitude) values in ascending order, so
    // a value's rank is its code and encode() needs no lookup.
    QF_CHECK(sorted[i].second == i, "codebook {} is not numbered in value order", format_name(format, bits_));
    if (i == 0) continue;
    const auto [a, code_a] = sorted[i - 1];
    const auto [b, code_b] = sorted[i];
    const bool up = ties == Ties::ToEven ? (code_b & 1) == 0 : std::fabs(b) <= std::fabs(a);
    thresholds_.push_back(threshold_between(a, b, up));
  }
}

const Codebook& Codebook::get(Format format) {
  static const Codebook nf4(Format::NF4), fp4(Format::FP4), e4m3(Format::FP8E4M3), e5m2(Format::FP8E5M2),
      ternary(Format::Ternary), binary(Format::Binary);
  switch (format) {
    case Format::NF4: return nf4;
    case Format::FP4: return fp4;
    case Format::FP8E4M3: return e4m3;
    case Format::FP8E5M2: return e5m2;
    case Format::Ternary: return ternary;
    case Format::Binary: return binary;
    case Format::Int: break;
  }
  fail("format {} has no codebook", format_name(format, 0));
}

uint8_t Codebook::encode(float x) const {
  uint8_t code = 0;
  encode(std::span<const float>(&x, 1), 1.0f, std::span<uint8_t>(&code, 1));
  return code;
}

void Codebook::encode(std::span<const float> x, float scale, std::span<uint8_t> codes) const {
  QF_CHECK(codes.size() >= x.size(), "code buffer of {} for {} values", codes.size(), x.size());
  QF_CHECK(scale > 0.0f, "codebook scale must be positive, got {}", scale);
  const size_t n = x.size();
  if (format_ == Format::FP8E4M3) {
    for (size_t i = 0; i < n; ++i) codes[i] = f32_to_f8e4m3(x[i] / scale, true);
    return;
  }
  if (format_ == Format::FP8E5M2) {
    for (size_t i = 0; i < n; ++i) codes[i] = f32_to_f8e5m2(x[i] / scale, true);
    return;
  }
  // Rank of the nearest value = number of thresholds below; fixed-size chunks vectorize.
  const uint8_t sign_bit = sign_magnitude_ ? static_cast<uint8_t>(1u << (bits_ - 1)) : 0;
  float v[kRankChunk];
  int32_t rank[kRankChunk];
  for (size_t base = 0; base < n; base += kRankChunk) {
    const size_t m = std::min(kRankChunk, n - base);
    const float* in = x.data() + base;
    for (size_t i = 0; i < m; ++i) v[i] = in[i] / scale;
    for (size_t i = m; i < kRankChunk; ++i) v[i] = 0.0f;
    if (sign_magnitude_) {
      for (size_t i = 0; i < kRankChunk; ++i) v[i] = std::fabs(v[i]);
    }
    for (size_t i = 0; i < kRankChunk; ++i) rank[i] = 0;
    for (const float t : thresholds_) {
      for (size_t i = 0; i < kRankChunk; ++i) rank[i] += v[i] > t ? 1 : 0;
    }
    uint8_t* out = codes.data() + base;
    if (sign_magnitude_) {
      for (size_t i = 0; i < m; ++i) {
        uint32_t bits;
        std::memcpy(&bits, in + i, sizeof bits);
        out[i] = static_cast<uint8_t>(static_cast<uint32_t>(rank[i]) | ((bits >> 31) * sign_bit));
      }
    } else {
      for (size_t i = 0; i < m; ++i) out[i] = static_cast<uint8_t>(rank[i]);
    }
  }
}

void Codebook::decode(std::span<const uint8_t> codes, float scale, std::span<float> out) const {
  QF_CHECK(out.size() >= codes.size(), "output of {} for {} codes", out.size(), codes.size());
  const float* table = values_.data();
  const size_t mask = values_.size() - 1;  // codes are < 2^bits after unpacking; mask keeps it memory-safe
  for (size_t i = 0; i < codes.size(); ++i) out[i] = scale * table[codes[i] & mask];
}

float choose_codebook_scale(std::span<const float> values, const Scheme& scheme) {
  auto finish = [&](double s) { return finish_scale(s, scheme.scale_format); };
  const size_t n = values.size();
  if (scheme.format == Format::Binary) {
    double sum = 0.0;
    for (float x : values) sum += std::fabs(x);
    // Unlike the shared rule (zero -> 1), an all-zero binary group gets the
    // smallest scale: +-scale cannot be 0, and FLT_MIN comes closest.
    return finish(n && sum > 0.0 ? sum / static_cast<double>(n) : FLT_MIN);
  }
  if (scheme.format == Format::Ternary) {
    double sum = 0.0;
    for (float x : values) sum += std::fabs(x);
    if (sum == 0.0) return finish(0.0);
    // Mean |x| over the values above `threshold` (never empty: max |x| exceeds it).
    auto mean_above = [&](double threshold) {
      double s = 0.0;
      size_t count = 0;
      for (float x : values) {
        const double a = std::fabs(static_cast<double>(x));
        if (a > threshold) {
          s += a;
          ++count;
        }
      }
      return count ? s / static_cast<double>(count) : 0.0;
    };
    double scale = mean_above(0.7 * sum / static_cast<double>(n));  // TWN
    for (int step = 0; step < 4; ++step) {                          // Lloyd refinement
      const double next = mean_above(scale / 2.0);
      if (next == scale || next == 0.0) break;
      scale = next;
    }
    return finish(scale);
  }
  float amax = 0.0f;
  for (float x : values) amax = std::max(amax, std::fabs(x));
  return codebook_scale_from_range(-amax, amax, scheme);
}

float codebook_scale_from_range(float lo, float hi, const Scheme& scheme) {
  QF_CHECK(std::isfinite(lo) && std::isfinite(hi), "cannot quantize a range with NaN or Inf ({}, {})", lo, hi);
  const Codebook& cb = Codebook::get(scheme.format);
  const float amax = std::max(std::fabs(lo), std::fabs(hi));
  return finish_scale(amax / cb.max_abs(), scheme.scale_format);
}

}  // namespace qf::quant
