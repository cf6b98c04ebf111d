#include "quant/scheme.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace qf::quant {
namespace {

// Expects parse(spec) to throw a qf::Error whose one-line message contains `needle`.
void expect_parse_error(const std::string& spec, const std::string& needle) {
  try {
    (void)Scheme::parse(spec);
    ADD_FAILURE() << "'" << spec << "' parsed without error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << "'" << spec << "' -> " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(Scheme, ParsesFullSpellings) {
  const Scheme s = Scheme::parse("int4:g128:asym");
  EXPECT_EQ(s.format, Format::Int);
  EXPECT_EQ(s.bits, 4);
  EXPECT_FALSE(s.symmetric);
  EXPECT_FALSE(s.full_range);
  EXPECT_EQ(s.granularity, Granularity::Group);
  EXPECT_EQ(s.group_size, 128);
  EXPECT_EQ(s.scale_format, ScaleFormat::F32);

  const Scheme t = Scheme::parse("int8:tensor:sym:full:f16scale");
  EXPECT_EQ(t.bits, 8);
  EXPECT_TRUE(t.symmetric);
  EXPECT_TRUE(t.full_range);
  EXPECT_EQ(t.granularity, Granularity::Tensor);
  EXPECT_EQ(t.group_size, 0);
  EXPECT_EQ(t.scale_format, ScaleFormat::F16);

  const Scheme u = Scheme::parse("ternary:channel:pow2scale");
  EXPECT_EQ(u.format, Format::Ternary);
  EXPECT_EQ(u.bits, 2);
  EXPECT_EQ(u.scale_format, ScaleFormat::Pow2);
}

TEST(Scheme, Defaults) {
  for (int b = 2; b <= 8; ++b) {
    const Scheme s = Scheme::parse("int" + std::to_string(b));
    EXPECT_EQ(s.bits, b);
    EXPECT_EQ(s.granularity, Granularity::Channel);
    EXPECT_TRUE(s.symmetric);
    EXPECT_FALSE(s.full_range);
    EXPECT_EQ(s.scale_format, ScaleFormat::F32);
  }
  for (const char* spec : {"nf4", "fp4"}) {
    const Scheme s = Scheme::parse(spec);
    EXPECT_EQ(s.bits, 4);
    EXPECT_EQ(s.granularity, Granularity::Group);
    EXPECT_EQ(s.group_size, 64);
  }
  EXPECT_EQ(Scheme::parse("fp8e4m3").granularity, Granularity::Tensor);
  EXPECT_EQ(Scheme::parse("fp8e4m3").bits, 8);
  EXPECT_EQ(Scheme::parse("fp8e5m2").granularity, Granularity::Tensor);
  EXPECT_EQ(Scheme::parse("ternary").granularity, Granularity::Channel);
  EXPECT_EQ(Scheme::parse("binary").granularity, Granularity::Channel);
  EXPECT_EQ(Scheme::parse("binary").bits, 1);
}

TEST(Scheme, FieldsInAnyOrderAndCaseInsensitive) {
  EXPECT_EQ(Scheme::parse("int4:asym:g128"), Scheme::parse("int4:g128:asym"));
  EXPECT_EQ(Scheme::parse("INT4:G128:ASYM"), Scheme::parse("int4:g128:asym"));
  EXPECT_EQ(Scheme::parse("int8:f16scale:full:tensor"), Scheme::parse("int8:tensor:full:f16scale"));
  EXPECT_EQ(Scheme::parse("int8:sym"), Scheme::parse("int8"));
  EXPECT_EQ(Scheme::parse("nf4:f32scale"), Scheme::parse("nf4"));
}

TEST(Scheme, ToStringIsCanonicalAndRoundTrips) {
  EXPECT_EQ(Scheme::parse("int4:asym:g128").to_string(), "int4:g128:asym");
  EXPECT_EQ(Scheme::parse("int8").to_string(), "int8:channel");
  EXPECT_EQ(Scheme::parse("int8:sym:full").to_string(), "int8:channel:full");
  EXPECT_EQ(Scheme::parse("nf4").to_string(), "nf4:g64");
  EXPECT_EQ(Scheme::parse("fp8e4m3").to_string(), "fp8e4m3:tensor");
  EXPECT_EQ(Scheme::parse("ternary:f16scale").to_string(), "ternary:channel:f16scale");
  const char* specs[] = {"int2",          "int3:g32",          "int5:tensor:asym",  "int6:g7:full:pow2scale",
                         "int7:channel",  "int8:g1:f16scale",  "nf4:g128",          "fp4:g32:pow2scale",
                         "fp8e4m3:channel", "fp8e5m2:g16",     "ternary:tensor",    "binary:g64:f16scale"};
  for (const char* spec : specs) {
    const Scheme s = Scheme::parse(spec);
    EXPECT_EQ(Scheme::parse(s.to_string()), s) << spec;
  }
}

TEST(Scheme, UnknownFormat) {
  expect_parse_error("foo", "unknown quantization format 'foo'");
  expect_parse_error("foo:g64", "valid: int2..int8, nf4, fp4, fp8e4m3, fp8e5m2, ternary, binary");
  expect_parse_error("nf3", "unknown quantization format 'nf3'");
  expect_parse_error("int4x", "unknown quantization format 'int4x'");
  expect_parse_error("g128", "unknown quantization format 'g128'");
  expect_parse_error("fp8", "use fp8e4m3 or fp8e5m2");
  expect_parse_error("int", "needs a width");
}

TEST(Scheme, BitsOutOfRange) {
  expect_parse_error("int9", "integer width 9 out of range");
  expect_parse_error("int1", "integer width 1 out of range");
  expect_parse_error("int0", "integer width 0 out of range");
  expect_parse_error("int16:g64", "integer width 16 out of range");
  expect_parse_error("int99999999999999999999", "out of range");
}

TEST(Scheme, BadGroupSizes) {
  expect_parse_error("int4:g0", "group size must be a positive integer, got 'g0'");
  expect_parse_error("int4:g-3", "group size must be a positive integer, got 'g-3'");
  expect_parse_error("int4:gx", "group size must be a positive integer, got 'gx'");
  expect_parse_error("int4:g", "group size must be a positive integer, got 'g'");
  expect_parse_error("int4:g12a", "group size must be a positive integer");
  expect_parse_error("int4:g+8", "group size must be a positive integer");
  expect_parse_error("int4:g99999999999999999999", "group size 'g99999999999999999999' is too large");
}

TEST(Scheme, DuplicateAndConflictingFields) {
  expect_parse_error("int4:g128:g128", "duplicate field 'g128'");
  expect_parse_error("int4:channel:g128", "conflicting granularities 'channel' and 'g128'");
  expect_parse_error("int4:tensor:channel", "conflicting granularities");
  expect_parse_error("int4:sym:asym", "conflicting symmetry fields 'sym' and 'asym'");
  expect_parse_error("int4:asym:asym", "duplicate field 'asym'");
  expect_parse_error("int4:f16scale:pow2scale", "conflicting scale formats 'f16scale' and 'pow2scale'");
  expect_parse_error("int4:full:full", "duplicate field 'full'");
  expect_parse_error("int4:asym:full", "'full' applies only to symmetric integers");
}

TEST(Scheme, IntegerOnlyFieldsOnCodebooks) {
  expect_parse_error("nf4:asym", "'asym' applies only to integer formats, not nf4");
  expect_parse_error("fp8e4m3:asym", "not fp8e4m3");
  expect_parse_error("ternary:full", "'full' applies only to symmetric integer formats, not ternary");
  EXPECT_NO_THROW(Scheme::parse("nf4:sym"));  // redundant but true
}

TEST(Scheme, MalformedFields) {
  expect_parse_error("", "empty quantization scheme");
  expect_parse_error("int4::g128", "empty field");
  expect_parse_error("int4:", "empty field");
  expect_parse_error(":int4", "empty field");
  expect_parse_error("int4:bogus", "unknown field 'bogus'");
  expect_parse_error("int4: g128", "unknown field ' g128'");
}

TEST(Scheme, ValidateCatchesInconsistentStructs) {
  Scheme s;
  EXPECT_NO_THROW(s.validate());
  s.bits = 9;
  EXPECT_THROW(s.validate(), Error);
  s = Scheme{};
  s.granularity = Granularity::Group;
  EXPECT_THROW(s.validate(), Error);  // no group size
  s.group_size = 32;
  EXPECT_NO_THROW(s.validate());
  s.granularity = Granularity::Channel;
  EXPECT_THROW(s.validate(), Error);  // group size without groups
  s = Scheme{};
  s.symmetric = false;
  s.full_range = true;
  EXPECT_THROW(s.validate(), Error);
  s = Scheme::parse("nf4");
  s.bits = 3;
  EXPECT_THROW(s.validate(), Error);
  s = Scheme::parse("nf4");
  s.symmetric = false;
  EXPECT_THROW(s.validate(), Error);
}

TEST(Scheme, GroupsPerRow) {
  const Scheme g64 = Scheme::parse("int4:g64");
  EXPECT_EQ(g64.groups_per_row(172), 3);
  EXPECT_EQ(g64.groups_per_row(128), 2);
  EXPECT_EQ(g64.groups_per_row(1), 1);
  EXPECT_EQ(g64.groups_per_row(0), 0);
  EXPECT_EQ(g64.values_per_scale(172), 64);
  const Scheme ch = Scheme::parse("int8");
  EXPECT_EQ(ch.groups_per_row(172), 1);
  EXPECT_EQ(ch.values_per_scale(172), 172);
  const Scheme t = Scheme::parse("int8:tensor");
  EXPECT_EQ(t.groups_per_row(172), 1);
  EXPECT_EQ(t.values_per_scale(172), 172);
  EXPECT_EQ(Scheme::parse("int4:g4").groups_per_row(7), 2);
}

TEST(Scheme, FormatHelpers) {
  EXPECT_EQ(format_name(Format::Int, 3), "int3");
  EXPECT_EQ(format_name(Format::FP8E5M2, 8), "fp8e5m2");
  EXPECT_EQ(format_fixed_bits(Format::Ternary), 2);
  EXPECT_EQ(format_fixed_bits(Format::Int), 0);
  EXPECT_TRUE(is_codebook(Format::NF4));
  EXPECT_FALSE(is_codebook(Format::Int));
}

}  // namespace
}  // namespace qf::quant
