#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/float_formats.h"
#include "quant/affine.h"
#include "quant/codebook.h"
#include "quant/packing.h"

namespace qf::quant {
namespace {

struct Matrix {
  int64_t rows;
  int64_t cols;
};

Matrix matrix_of(const Shape& shape) { return {shape_rows(shape), shape_cols(shape)}; }

DType scale_dtype(ScaleFormat f) {
  switch (f) {
    case ScaleFormat::F32: return DType::F32;
    case ScaleFormat::F16: return DType::F16;
    case ScaleFormat::Pow2: return DType::I8;
  }
  fail("invalid scale format value {}", static_cast<int>(f));
}

Shape scale_shape(const Scheme& scheme, Matrix m) {
  if (scheme.granularity == Granularity::Tensor) return {1, 1};
  return {m.rows, scheme.groups_per_row(m.cols)};
}

bool has_zero_points(const Scheme& scheme) { return scheme.format == Format::Int && !scheme.symmetric; }

Tensor as_f32(const Tensor& weights) {
  QF_CHECK(dtype_is_float(weights.dtype()), "cannot quantize a {} tensor (expected a float dtype)",
           dtype_name(weights.dtype()));
  return weights.to_f32();
}

// Rounds the scale as storage will and checks the zero point.
GroupParams normalized(GroupParams p, const Scheme& scheme) {
  p.scale = round_scale(p.scale, scheme.scale_format);
  if (scheme.format == Format::Int) {
    (void)affine_params(p, scheme);  // validates the zero point
    if (scheme.symmetric) p.zero_point = 0;
  } else {
    p.zero_point = 0;
  }
  return p;
}

void store_params(QuantizedTensor& q, int64_t index, std::span<const GroupParams> params) {
  const size_t base = static_cast<size_t>(index);
  switch (q.scheme.scale_format) {
    case ScaleFormat::F32: {
      float* s = q.scales.mutable_data<float>() + base;
      for (size_t i = 0; i < params.size(); ++i) s[i] = params[i].scale;
      break;
    }
    case ScaleFormat::F16: {
      uint16_t* s = q.scales.mutable_data<uint16_t>() + base;
      for (size_t i = 0; i < params.size(); ++i) s[i] = f32_to_f16(params[i].scale);
      break;
    }
    case ScaleFormat::Pow2: {
      int8_t* s = q.scales.mutable_data<int8_t>() + base;
      for (size_t i = 0; i < params.size(); ++i) {
        int exp = 0;
        const float mant = std::frexp(params[i].scale, &exp);
        QF_CHECK(mant == 0.5f && exp - 1 >= -128 && exp - 1 <= 127, "scale {} is not a storable power of two",
                 params[i].scale);
        s[i] = static_cast<int8_t>(exp - 1);
      }
      break;
    }
  }
  if (has_zero_points(q.scheme)) {
    uint8_t* z = q.zero_points.mutable_data<uint8_t>() + base;
    for (size_t i = 0; i < params.size(); ++i) z[i] = static_cast<uint8_t>(params[i].zero_point);
  }
}

void load_params(const QuantizedTensor& q, int64_t index, std::span<GroupParams> params) {
  const size_t base = static_cast<size_t>(index);
  for (size_t i = 0; i < params.size(); ++i) {
    float s = 0.0f;
    switch (q.scheme.scale_format) {
      case ScaleFormat::F32: s = q.scales.data<float>()[base + i]; break;
      case ScaleFormat::F16: s = f16_to_f32(q.scales.data<uint16_t>()[base + i]); break;
      case ScaleFormat::Pow2: s = std::ldexp(1.0f, q.scales.data<int8_t>()[base + i]); break;
    }
    const int32_t zp = has_zero_points(q.scheme) ? q.zero_points.data<uint8_t>()[base + i] : 0;
    params[i] = {s, zp};
  }
}

QuantizedTensor allocate(const Scheme& scheme, const Shape& shape) {
  const Matrix m = matrix_of(shape);
  QuantizedTensor q;
  q.scheme = scheme;
  q.shape = shape;
  q.codes = Tensor::zeros(DType::U8, {m.rows, static_cast<int64_t>(packed_bytes(m.cols, scheme.bits))});
  q.scales = Tensor::zeros(scale_dtype(scheme.scale_format), scale_shape(scheme, m));
  if (has_zero_points(scheme)) q.zero_points = Tensor::zeros(DType::U8, scale_shape(scheme, m));
  return q;
}

std::span<const float> row_of(const Tensor& w, Matrix m, int64_t r) {
  return {w.data<float>() + r * m.cols, static_cast<size_t>(m.cols)};
}

std::span<uint8_t> code_row(QuantizedTensor& q, int64_t r) {
  const int64_t bytes = q.codes.cols();
  return {q.codes.mutable_data<uint8_t>() + r * bytes, static_cast<size_t>(bytes)};
}

// Checks that `params` fits `scheme` on an [m.rows, m.cols] matrix.
void check_grid(const ParamGrid& params, const Scheme& scheme, Matrix m) {
  const bool per_tensor = scheme.granularity == Granularity::Tensor;
  const int64_t rows = per_tensor ? 1 : m.rows;
  const int64_t groups = per_tensor ? 1 : scheme.groups_per_row(m.cols);
  QF_CHECK(params.rows == rows && params.groups == groups &&
               static_cast<int64_t>(params.params.size()) == rows * groups,
           "parameter grid [{}, {}] ({} entries) does not fit scheme {} on [{}, {}] (needs [{}, {}])", params.rows,
           params.groups, params.params.size(), scheme.to_string(), m.rows, m.cols, rows, groups);
}

// Caller-supplied parameters as storage will hold them: checks the grid
// against the matrix, then rounds each scale and checks each zero point,
// naming the offending row and group.
ParamGrid stored_grid(const ParamGrid& params, const Scheme& scheme, Matrix m) {
  check_grid(params, scheme, m);
  ParamGrid stored = params;
  for (int64_t r = 0; r < stored.rows; ++r) {
    const auto row = stored.row(r);
    for (size_t g = 0; g < row.size(); ++g) {
      const std::string where = stored.rows == 1 && stored.groups == 1 && scheme.granularity == Granularity::Tensor
                                    ? std::string("tensor-wide parameters")
                                    : fmt::format("parameters of row {}, group {}", r, g);
      row[g] = with_context(where, [&] { return normalized(row[g], scheme); });
    }
  }
  return stored;
}

// Whole-tensor parameters for Tensor granularity.
GroupParams tensor_params(const Tensor& w, const Scheme& scheme, Matrix m) {
  GroupStats all;
  for (int64_t r = 0; r < m.rows; ++r) {
    const auto row = row_of(w, m, r);
    const GroupStats st = group_stats(row);
    if (!st.finite) fail_nonfinite(row, 0, r);
    if (r == 0) {
      all = st;
    } else {
      all.min = std::min(all.min, st.min);
      all.max = std::max(all.max, st.max);
      all.absmax = std::max(all.absmax, st.absmax);
    }
  }
  switch (scheme.format) {
    case Format::Ternary:
    case Format::Binary:
      return {choose_codebook_scale(std::span<const float>(w.data<float>(), static_cast<size_t>(w.numel())), scheme),
              0};
    case Format::Int: return group_params_from_range(all.min, all.max, scheme);
    default: return group_params_from_range(-all.absmax, all.absmax, scheme);
  }
}

}  // namespace

std::span<const GroupParams> ParamGrid::row(int64_t r) const {
  const int64_t i = rows == 1 ? 0 : r;
  QF_CHECK(i >= 0 && i < rows, "row {} of a parameter grid with {} rows", r, rows);
  return std::span<const GroupParams>(params).subspan(static_cast<size_t>(i * groups), static_cast<size_t>(groups));
}

std::span<GroupParams> ParamGrid::row(int64_t r) {
  const int64_t i = rows == 1 ? 0 : r;
  QF_CHECK(i >= 0 && i < rows, "row {} of a parameter grid with {} rows", r, rows);
  return std::span<GroupParams>(params).subspan(static_cast<size_t>(i * groups), static_cast<size_t>(groups));
}

int64_t QuantizedTensor::rows() const { return matrix_of(shape).rows; }
int64_t QuantizedTensor::cols() const { return matrix_of(shape).cols; }

size_t QuantizedTensor::storage_bytes() const {
  return codes.nbytes() + scales.nbytes() + (zero_points.empty() ? 0 : zero_points.nbytes());
}

double QuantizedTensor::bits_per_weight() const {
  const int64_t n = shape_numel(shape);
  return n == 0 ? 0.0 : static_cast<double>(storage_bytes()) * 8.0 / static_cast<double>(n);
}

void QuantizedTensor::validate() const {
  scheme.validate();
  const Matrix m = matrix_of(shape);
  const Shape code_shape{m.rows, static_cast<int64_t>(packed_bytes(m.cols, scheme.bits))};
  QF_CHECK(!codes.empty() && codes.dtype() == DType::U8 && codes.shape() == code_shape,
           "quantized codes must be U8 {} for {} of shape {}, got {} {}", shape_to_string(code_shape),
           scheme.to_string(), shape_to_string(shape), dtype_name(codes.dtype()), shape_to_string(codes.shape()));
  const Shape s_shape = scale_shape(scheme, m);
  const DType s_dtype = scale_dtype(scheme.scale_format);
  QF_CHECK(!scales.empty() && scales.dtype() == s_dtype && scales.shape() == s_shape,
           "quantization scales must be {} {} for {} of shape {}, got {} {}", dtype_name(s_dtype),
           shape_to_string(s_shape), scheme.to_string(), shape_to_string(shape), dtype_name(scales.dtype()),
           shape_to_string(scales.shape()));
  if (has_zero_points(scheme)) {
    QF_CHECK(!zero_points.empty() && zero_points.dtype() == DType::U8 && zero_points.shape() == s_shape,
             "zero points must be U8 {} for {}, got {} {}", shape_to_string(s_shape), scheme.to_string(),
             dtype_name(zero_points.dtype()), shape_to_string(zero_points.shape()));
  } else {
    QF_CHECK(zero_points.empty(), "scheme {} has no zero points, but a zero-point tensor was given",
             scheme.to_string());
  }
}

ParamGrid choose_params(const Tensor& weights, const Scheme& scheme) {
  scheme.validate();
  const Tensor w = as_f32(weights);
  const Matrix m{w.rows(), w.cols()};
  ParamGrid grid;
  if (scheme.granularity == Granularity::Tensor) {
    grid.rows = grid.groups = 1;
    grid.params = {tensor_params(w, scheme, m)};
    return grid;
  }
  grid.rows = m.rows;
  grid.groups = scheme.groups_per_row(m.cols);
  grid.params.resize(static_cast<size_t>(grid.rows * grid.groups));
  for (int64_t r = 0; r < m.rows; ++r) choose_row_params(row_of(w, m, r), scheme, grid.row(r), r);
  return grid;
}

QuantizedTensor quantize(const Tensor& weights, const Scheme& scheme) {
  scheme.validate();
  const Tensor w = as_f32(weights);
  const Matrix m{w.rows(), w.cols()};
  QuantizedTensor q = allocate(scheme, w.shape());
  if (scheme.granularity == Granularity::Tensor) {
    const GroupParams p = tensor_params(w, scheme, m);
    store_params(q, 0, std::span(&p, 1));
    for (int64_t r = 0; r < m.rows; ++r) quantize_row(row_of(w, m, r), std::span(&p, 1), scheme, code_row(q, r));
    return q;
  }
  // Row by row, so each row is read from memory once for its parameters and its codes.
  std::vector<GroupParams> params(static_cast<size_t>(scheme.groups_per_row(m.cols)));
  for (int64_t r = 0; r < m.rows; ++r) {
    const auto row = row_of(w, m, r);
    choose_row_params(row, scheme, params, r);
    store_params(q, r * static_cast<int64_t>(params.size()), params);
    quantize_row(row, params, scheme, code_row(q, r));
  }
  return q;
}

QuantizedTensor quantize(const Tensor& weights, const Scheme& scheme, const ParamGrid& params) {
  scheme.validate();
  const Tensor w = as_f32(weights);
  const Matrix m{w.rows(), w.cols()};
  const ParamGrid stored = stored_grid(params, scheme, m);
  QuantizedTensor q = allocate(scheme, w.shape());
  store_params(q, 0, stored.params);
  for (int64_t r = 0; r < m.rows; ++r) {
    const auto row = row_of(w, m, r);
    if (!group_stats(row).finite) fail_nonfinite(row, 0, r);
    quantize_row(row, stored.row(r), scheme, code_row(q, r));
  }
  return q;
}

ParamGrid stored_params(const QuantizedTensor& q) {
  q.validate();
  ParamGrid grid;
  grid.rows = q.scales.dim(0);
  grid.groups = q.scales.dim(1);
  grid.params.resize(static_cast<size_t>(grid.rows * grid.groups));
  load_params(q, 0, grid.params);
  return grid;
}

Tensor dequantize(const QuantizedTensor& q) {
  Tensor out = Tensor::zeros(DType::F32, q.shape);
  dequantize_into(q, {out.mutable_data<float>(), static_cast<size_t>(out.numel())});
  return out;
}

void dequantize_into(const QuantizedTensor& q, std::span<float> out) {
  const ParamGrid grid = stored_params(q);  // validates
  const Matrix m = matrix_of(q.shape);
  QF_CHECK(static_cast<int64_t>(out.size()) == shape_numel(q.shape), "dequantizing {} values into a buffer of {}",
           shape_numel(q.shape), out.size());
  float* o = out.data();
  const int64_t bytes = q.codes.cols();
  const uint8_t* codes = q.codes.data<uint8_t>();
  for (int64_t r = 0; r < m.rows; ++r) {
    dequantize_row({codes + r * bytes, static_cast<size_t>(bytes)}, grid.row(r), q.scheme,
                   {o + r * m.cols, static_cast<size_t>(m.cols)});
  }
}

Tensor fake_quantize(const Tensor& weights, const Scheme& scheme) {
  return fake_quantize(weights, scheme, choose_params(weights, scheme));
}

Tensor fake_quantize(const Tensor& weights, const Scheme& scheme, const ParamGrid& params) {
  scheme.validate();
  Tensor w = as_f32(weights).clone();
  const Matrix m{w.rows(), w.cols()};
  const ParamGrid stored = stored_grid(params, scheme, m);
  float* data = w.mutable_data<float>();
  for (int64_t r = 0; r < m.rows; ++r) {
    const std::span<float> row(data + r * m.cols, static_cast<size_t>(m.cols));
    if (!group_stats(row).finite) fail_nonfinite(row, 0, r);
    fake_quantize_row(row, stored.row(r), scheme);
  }
  return w;
}

}  // namespace qf::quant
