// A quantization scheme is plain data: what codes look like (integer of some
// width, or a fixed codebook), which values share a scale, and how scales are
// stored. Every part of QuantForge (CLI, algorithms, formats) speaks it.
//
// Spelling, used across the whole CLI (fields separated by ':'):
//   FORMAT[:GRANULARITY][:sym|asym][:full][:SCALE]
//   FORMAT       int2..int8 | nf4 | fp4 (E2M1) | fp8e4m3 | fp8e5m2 | ternary | binary
//   GRANULARITY  tensor | channel | gN (groups of N along the input dimension)
//   sym / asym   integer formats only (default sym)
//   full         symmetric integers use the full range [-2^(b-1), 2^(b-1)-1]
//                instead of the restricted [-(2^(b-1)-1), 2^(b-1)-1]
//   SCALE        f32scale (default) | f16scale | pow2scale (power-of-two, shift-only)
// Examples: int4:g128:asym  int8:channel  nf4:g64  fp8e4m3  ternary:channel:f16scale
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qf::quant {

enum class Format { Int, NF4, FP4, FP8E4M3, FP8E5M2, Ternary, Binary };
enum class Granularity { Tensor, Channel, Group };
enum class ScaleFormat { F32, F16, Pow2 };

struct Scheme {
  Format format = Format::Int;
  int bits = 8;  // bits per code; fixed by the format except for Int (2..8)
  bool symmetric = true;
  bool full_range = false;
  Granularity granularity = Granularity::Channel;
  int64_t group_size = 0;  // > 0 exactly when granularity == Group
  ScaleFormat scale_format = ScaleFormat::F32;

  // Throws qf::Error with one line saying what is wrong with `spec`.
  static Scheme parse(std::string_view spec);
  std::string to_string() const;  // parse(to_string()) == *this
  void validate() const;          // throws qf::Error on inconsistent fields
  bool operator==(const Scheme&) const = default;

  // Number of values sharing one scale in a row of `cols` values
  // (cols for Tensor/Channel granularity, group_size for Group).
  int64_t values_per_scale(int64_t cols) const;
  // Scale groups along a row of `cols` values (the last one may be ragged).
  int64_t groups_per_row(int64_t cols) const;
};

}  // namespace qf::quant
