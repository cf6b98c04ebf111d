#include "train/fake_quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/error.h"
#include "quant/affine.h"

namespace qf::train {

FakeQuantParams init_fake_quant(const Tensor& w, const quant::Scheme& scheme) {
  QF_CHECK(scheme.format == quant::Format::Int,
           "quantization-aware training learns integer scales and zero points; scheme '{}' is a codebook or float "
           "format it cannot train (use int2..int8)",
           scheme.to_string());
  QF_CHECK(w.dtype() == DType::F32 && w.ndim() == 2, "fake quantization needs an F32 [out, in] matrix");
  FakeQuantParams p;
  p.scheme = scheme;
  p.rows = w.dim(0);
  p.cols = w.dim(1);
  p.groups = scheme.groups_per_row(p.cols);
  p.group_size = scheme.values_per_scale(p.cols);
  p.param_rows = scheme.granularity == quant::Granularity::Tensor ? 1 : p.rows;
  const quant::CodeRange r = quant::int_code_range(scheme.bits, scheme.symmetric, scheme.full_range);
  p.qmin = r.qmin;
  p.qmax = r.qmax;
  const quant::ParamGrid grid = quant::choose_params(w, scheme);
  QF_CHECK(grid.rows == p.param_rows && grid.groups == p.groups, "parameter grid [{}, {}] for [{}, {}]", grid.rows,
           grid.groups, p.param_rows, p.groups);
  p.scale.resize(grid.params.size());
  if (!scheme.symmetric) p.zero.resize(grid.params.size());
  for (size_t i = 0; i < grid.params.size(); ++i) {
    p.scale[i] = grid.params[i].scale;
    if (!scheme.symmetric) p.zero[i] = static_cast<float>(grid.params[i].zero_point);
  }
  return p;
}

float effective_scale(const FakeQuantParams& p, int64_t idx) {
  return quant::finish_scale(p.scale[static_cast<size_t>(idx)], p.scheme.scale_format);
}

int32_t effective_zero(const FakeQuantParams& p, int64_t idx) {
  if (p.scheme.symmetric) return 0;
  const float z = quant::round_half_even(p.zero[static_cast<size_t>(idx)]);
  return static_cast<int32_t>(std::clamp(z, static_cast<float>(p.qmin), static_cast<float>(p.qmax)));
}

namespace {

// Calls fn(row, group, idx, begin, end) for every group of every row.
template <typename Fn>
void for_groups(const FakeQuantParams& p, Fn&& fn) {
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t g = 0; g < p.groups; ++g) {
      const int64_t b = g * p.group_size, e = std::min(p.cols, b + p.group_size);
      fn(r, p.index(r, g), b, e);
    }
}

}  // namespace

void fake_quant_forward(const float* w, const FakeQuantParams& p, float* wq) {
  std::vector<float> s(p.scale.size());
  std::vector<float> z(p.scale.size());
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = effective_scale(p, static_cast<int64_t>(i));
    z[i] = static_cast<float>(effective_zero(p, static_cast<int64_t>(i)));
  }
  for_groups(p, [&](int64_t r, int64_t idx, int64_t b, int64_t e) {
    const float sc = s[static_cast<size_t>(idx)], zp = z[static_cast<size_t>(idx)];
    const float lo = static_cast<float>(p.qmin) - zp, hi = static_cast<float>(p.qmax) - zp;
    const float* in = w + r * p.cols;
    float* out = wq + r * p.cols;
    for (int64_t c = b; c < e; ++c) out[c] = sc * quant::round_clamped(in[c], sc, lo, hi);
  });
}

void fake_quant_backward(const float* w, const FakeQuantParams& p, const float* dwq, float* dw, float* dscale,
                         float* dzero) {
  const double qpos = static_cast<double>(std::max(p.qmax, -p.qmin));
  for_groups(p, [&](int64_t r, int64_t idx, int64_t b, int64_t e) {
    const float sc = effective_scale(p, idx);
    const float zp = static_cast<float>(effective_zero(p, idx));
    const float lo = static_cast<float>(p.qmin) - zp, hi = static_cast<float>(p.qmax) - zp;
    const float* in = w + r * p.cols;
    const float* d = dwq + r * p.cols;
    float* o = dw + r * p.cols;
    double gs = 0, gz = 0;
    for (int64_t c = b; c < e; ++c) {
      const float v = in[c] / sc;
      const bool inside = v >= lo && v <= hi;
      const float rq = quant::round_clamped(in[c], sc, lo, hi);
      o[c] = inside ? d[c] : 0.0f;
      gs += static_cast<double>(d[c]) * (inside ? rq - v : rq);
      if (!inside) gz -= static_cast<double>(d[c]) * sc;
    }
    // LSQ's gradient scale over the values sharing this parameter (a whole
    // tensor for per-tensor granularity, counted group by group here).
    const double n = static_cast<double>(p.param_rows == 1 ? p.rows * p.cols : e - b);
    const double g = 1.0 / std::sqrt(n * qpos);
    dscale[static_cast<size_t>(idx)] += static_cast<float>(gs * g);
    if (dzero && !p.scheme.symmetric) dzero[static_cast<size_t>(idx)] += static_cast<float>(gz * g);
  });
}

void clamp_fake_quant(FakeQuantParams& p) {
  for (float& s : p.scale)
    if (!(s > FLT_MIN)) s = FLT_MIN;  // also catches NaN (divergence is reported by the loop)
  for (float& z : p.zero) z = std::clamp(z, static_cast<float>(p.qmin), static_cast<float>(p.qmax));
}

quant::QuantizedTensor export_quantized(const float* w, const FakeQuantParams& p) {
  quant::ParamGrid grid;
  grid.rows = p.param_rows;
  grid.groups = p.groups;
  grid.params.resize(p.scale.size());
  for (size_t i = 0; i < p.scale.size(); ++i) {
    grid.params[i].scale = effective_scale(p, static_cast<int64_t>(i));
    grid.params[i].zero_point = effective_zero(p, static_cast<int64_t>(i));
  }
  std::vector<float> copy(w, w + p.rows * p.cols);
  return quant::quantize(Tensor::from_f32(copy, {p.rows, p.cols}), p.scheme, grid);
}

}  // namespace qf::train
