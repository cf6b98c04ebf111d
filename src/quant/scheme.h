// A quantization scheme is plain data: what codes look like (integer of some
// width, or a fixed codebook), which values share a scale, and how scales are
// stored. Every part of QuantForge (CLI, algorithms, formats) speaks it.
//
// Spelling, used across the whole CLI (fields separated by ':'):
//   FORMAT[:GRANULARITY][:sym|asym][:full][:SCALE]
//   FORMAT       int2..int8 | nf4 | fp4 (E2M1) | fp8e4m3 | fp8e5m2 | ternary | binary
//   GRANULARITY  tensor | channel | gN (groups of N along the input dimension,
//                N >= 1; the last group of a row may be shorter)
//   sym / asym   integer formats only (default sym; 'sym' on a codebook format is
//                accepted as redundant, 'asym' is an error)
//   full         symmetric integers use the full range [-2^(b-1), 2^(b-1)-1]
//                instead of the restricted [-(2^(b-1)-1), 2^(b-1)-1]
//   SCALE        f32scale (default) | f16scale | pow2scale (power-of-two, shift-only)
// Fields after FORMAT may come in any order, each at most once; the spelling is
// case-insensitive. to_string() writes the canonical form: FORMAT:GRANULARITY
// followed by asym / full / the scale format only where they differ from the
// defaults (e.g. "int4:g128:asym", "nf4:g64", "fp8e4m3:tensor").
//
// Defaults when GRANULARITY is left out (what users of llama.cpp, bitsandbytes
// and ONNX Runtime / vLLM expect):
//   int2..int8       channel (one scale per output row), symmetric, restricted range
//   nf4, fp4         g64 (bitsandbytes' block size)
//   fp8e4m3/e5m2     tensor (one amax/448 resp. amax/57344 scale, as in vLLM/TensorRT)
//   ternary, binary  channel
// Scales (see quant/codebook.h for the codebook formats):
//   int        symmetric: absmax / qmax (full range: absmax / (2^(b-1) - 1/2));
//              asymmetric: (max - min) / (2^b - 1) with an integer zero point
//   nf4, fp4, fp8  absmax mapped onto the codebook's largest magnitude
//   ternary    TWN threshold scale refined by Lloyd steps; binary mean |w|
// f16scale and pow2scale round the scale *up* to the next representable value,
// so the group's range is still covered (no extra clipping). Stored scales are
// F32, F16, or int8 exponents for pow2scale (quant/quantize.h).
//
// Errors: parse() throws qf::Error with one line naming the problem, e.g.
//   unknown quantization format 'int9x' in scheme 'int9x:g64' (valid: int2..int8, nf4, ...)
//   integer width 9 out of range in scheme 'int9' (valid: int2..int8; use 'binary' for 1 bit)
//   group size must be a positive integer, got 'g0' in scheme 'int4:g0'
//   conflicting granularities 'channel' and 'g128' in scheme 'int4:channel:g128'
//   'asym' applies only to integer formats, not nf4, in scheme 'nf4:asym'
// Examples: int4:g128:asym  int8:channel  nf4:g64  fp8e4m3  ternary:channel:f16scale
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qf::quant {

enum class Format { Int, NF4, FP4, FP8E4M3, FP8E5M2, Ternary, Binary };

// Integer widths, defined once. A weight scheme (parse, validate) stores codes
// packed into bytes with U8 zero points: int2..int8. Range arithmetic
// (int_code_range, affine parameters) and calibration targets (an int16
// activation range, say) are not stored that way and go up to 16 bits; the
// difference is intended. Below 2 bits a symmetric range has no levels.
inline constexpr int kMinIntBits = 2;
inline constexpr int kMaxIntBits = 8;
inline constexpr int kMaxRangeIntBits = 16;
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

// "int4", "nf4", "fp8e4m3", ... (the FORMAT field; Int needs the width).
std::string format_name(Format format, int bits);
// Bits per code of the fixed-width formats (0 for Int, whose width varies).
int format_fixed_bits(Format format);
// True for the formats decoded through a value table (everything but Int).
inline bool is_codebook(Format format) { return format != Format::Int; }

}  // namespace qf::quant
