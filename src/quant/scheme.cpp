#include "quant/scheme.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace qf::quant {
namespace {

constexpr std::string_view kValidFormats = "int2..int8, nf4, fp4, fp8e4m3, fp8e5m2, ternary, binary";
constexpr std::string_view kValidFields =
    "tensor, channel, gN, sym, asym, full, f32scale, f16scale or pow2scale";

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

// Parses the FORMAT field into `scheme` (format and bits).
void parse_format(std::string_view field, std::string_view spec, Scheme& scheme) {
  struct Named {
    std::string_view name;
    Format format;
  };
  static constexpr Named kNamed[] = {
      {"nf4", Format::NF4},         {"fp4", Format::FP4},         {"fp8e4m3", Format::FP8E4M3},
      {"fp8e5m2", Format::FP8E5M2}, {"ternary", Format::Ternary}, {"binary", Format::Binary},
  };
  for (const auto& n : kNamed) {
    if (field == n.name) {
      scheme.format = n.format;
      scheme.bits = format_fixed_bits(n.format);
      return;
    }
  }
  if (field.starts_with("int") && all_digits(field.substr(3))) {
    const std::string_view digits = field.substr(3);
    int bits = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || bits < kMinIntBits || bits > kMaxIntBits) {
      fail("integer width {} out of range in scheme '{}' (valid: int{}..int{}; use 'binary' for 1 bit)",
           digits, spec, kMinIntBits, kMaxIntBits);
    }
    scheme.format = Format::Int;
    scheme.bits = bits;
    return;
  }
  if (field == "int")
    fail("integer format needs a width in scheme '{}' (valid: int{}..int{}, e.g. 'int4')", spec, kMinIntBits,
         kMaxIntBits);
  if (field == "fp8" || field == "float8") {
    fail("ambiguous quantization format '{}' in scheme '{}' (use fp8e4m3 or fp8e5m2)", field, spec);
  }
  fail("unknown quantization format '{}' in scheme '{}' (valid: {})", field, spec, kValidFormats);
}

int64_t parse_group_size(std::string_view field, std::string_view spec) {
  const std::string_view digits = field.substr(1);
  if (!all_digits(digits)) {
    fail("group size must be a positive integer, got '{}' in scheme '{}'", field, spec);
  }
  int64_t n = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec == std::errc::result_out_of_range) fail("group size '{}' is too large in scheme '{}'", field, spec);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || n <= 0) {
    fail("group size must be a positive integer, got '{}' in scheme '{}'", field, spec);
  }
  return n;
}

// Remembers which field set an optional part, to report duplicates and conflicts.
void set_once(std::optional<std::string_view>& slot, std::string_view field, std::string_view what,
              std::string_view spec) {
  if (slot) {
    if (*slot == field) fail("duplicate field '{}' in scheme '{}'", field, spec);
    fail("conflicting {} '{}' and '{}' in scheme '{}'", what, *slot, field, spec);
  }
  slot = field;
}

}  // namespace

std::string format_name(Format format, int bits) {
  switch (format) {
    case Format::Int: return "int" + std::to_string(bits);
    case Format::NF4: return "nf4";
    case Format::FP4: return "fp4";
    case Format::FP8E4M3: return "fp8e4m3";
    case Format::FP8E5M2: return "fp8e5m2";
    case Format::Ternary: return "ternary";
    case Format::Binary: return "binary";
  }
  fail("invalid quantization format value {}", static_cast<int>(format));
}

int format_fixed_bits(Format format) {
  switch (format) {
    case Format::Int: return 0;
    case Format::NF4:
    case Format::FP4: return 4;
    case Format::FP8E4M3:
    case Format::FP8E5M2: return 8;
    case Format::Ternary: return 2;
    case Format::Binary: return 1;
  }
  fail("invalid quantization format value {}", static_cast<int>(format));
}

Scheme Scheme::parse(std::string_view spec) {
  if (spec.empty()) fail("empty quantization scheme (expected e.g. 'int4:g128' or 'nf4')");
  const std::string lower = lowercase(spec);
  const std::vector<std::string_view> fields = split(lower, ':');
  for (const auto& f : fields) {
    if (f.empty()) fail("empty field in scheme '{}' (fields are separated by a single ':')", spec);
  }

  Scheme s;
  parse_format(fields[0], spec, s);
  const std::string name = format_name(s.format, s.bits);

  std::optional<std::string_view> granularity, symmetry, full, scale;
  for (size_t i = 1; i < fields.size(); ++i) {
    const std::string_view f = fields[i];
    if (f == "tensor" || f == "channel") {
      set_once(granularity, f, "granularities", spec);
      s.granularity = f == "tensor" ? Granularity::Tensor : Granularity::Channel;
      s.group_size = 0;
    } else if (f.starts_with('g')) {  // no other field starts with 'g'
      const int64_t n = parse_group_size(f, spec);
      set_once(granularity, f, "granularities", spec);
      s.granularity = Granularity::Group;
      s.group_size = n;
    } else if (f == "sym" || f == "asym") {
      set_once(symmetry, f, "symmetry fields", spec);
      s.symmetric = f == "sym";
    } else if (f == "full") {
      set_once(full, f, "fields", spec);
      s.full_range = true;
    } else if (f == "f32scale" || f == "f16scale" || f == "pow2scale") {
      set_once(scale, f, "scale formats", spec);
      s.scale_format = f == "f32scale" ? ScaleFormat::F32 : f == "f16scale" ? ScaleFormat::F16 : ScaleFormat::Pow2;
    } else {
      fail("unknown field '{}' in scheme '{}' (expected {})", fields[i], spec, kValidFields);
    }
  }

  if (s.format != Format::Int) {
    if (symmetry && *symmetry == "asym") {
      fail("'asym' applies only to integer formats, not {}, in scheme '{}'", name, spec);
    }
    if (full) fail("'full' applies only to symmetric integer formats, not {}, in scheme '{}'", name, spec);
  } else if (full && !s.symmetric) {
    fail("'full' applies only to symmetric integers; it conflicts with 'asym' in scheme '{}'", spec);
  }

  if (!granularity) {
    switch (s.format) {
      case Format::NF4:
      case Format::FP4:
        s.granularity = Granularity::Group;
        s.group_size = 64;
        break;
      case Format::FP8E4M3:
      case Format::FP8E5M2: s.granularity = Granularity::Tensor; break;
      case Format::Int:
      case Format::Ternary:
      case Format::Binary: s.granularity = Granularity::Channel; break;
    }
  }
  s.validate();
  return s;
}

std::string Scheme::to_string() const {
  validate();
  std::string out = format_name(format, bits);
  switch (granularity) {
    case Granularity::Tensor: out += ":tensor"; break;
    case Granularity::Channel: out += ":channel"; break;
    case Granularity::Group: out += ":g" + std::to_string(group_size); break;
  }
  if (!symmetric) out += ":asym";
  if (full_range) out += ":full";
  if (scale_format == ScaleFormat::F16) out += ":f16scale";
  if (scale_format == ScaleFormat::Pow2) out += ":pow2scale";
  return out;
}

void Scheme::validate() const {
  switch (format) {
    case Format::Int:
      QF_CHECK(bits >= kMinIntBits && bits <= kMaxIntBits,
               "invalid scheme: integer width {} out of range (int{}..int{})", bits, kMinIntBits, kMaxIntBits);
      QF_CHECK(symmetric || !full_range, "invalid scheme: 'full' range needs a symmetric integer format");
      break;
    case Format::NF4:
    case Format::FP4:
    case Format::FP8E4M3:
    case Format::FP8E5M2:
    case Format::Ternary:
    case Format::Binary:
      QF_CHECK(bits == format_fixed_bits(format), "invalid scheme: {} has {} bits per code, not {}",
               format_name(format, bits), format_fixed_bits(format), bits);
      QF_CHECK(symmetric && !full_range,
               "invalid scheme: {} is a codebook format; 'asym' and 'full' apply only to integers",
               format_name(format, bits));
      break;
    default: fail("invalid scheme: format value {}", static_cast<int>(format));
  }
  switch (granularity) {
    case Granularity::Tensor:
    case Granularity::Channel:
      QF_CHECK(group_size == 0, "invalid scheme: group size {} given without group granularity", group_size);
      break;
    case Granularity::Group:
      QF_CHECK(group_size > 0, "invalid scheme: group size must be positive, got {}", group_size);
      break;
    default: fail("invalid scheme: granularity value {}", static_cast<int>(granularity));
  }
  QF_CHECK(scale_format == ScaleFormat::F32 || scale_format == ScaleFormat::F16 || scale_format == ScaleFormat::Pow2,
           "invalid scheme: scale format value {}", static_cast<int>(scale_format));
}

int64_t Scheme::values_per_scale(int64_t cols) const {
  return granularity == Granularity::Group ? group_size : cols;
}

int64_t Scheme::groups_per_row(int64_t cols) const {
  QF_CHECK(cols >= 0, "negative row length {}", cols);
  if (granularity != Granularity::Group) return 1;
  QF_CHECK(group_size > 0, "invalid scheme: group size must be positive, got {}", group_size);
  return cols / group_size + (cols % group_size != 0 ? 1 : 0);
}

}  // namespace qf::quant
