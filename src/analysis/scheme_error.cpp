#include "analysis/scheme_error.h"

#include <cmath>
#include <limits>
#include <vector>

#include "quant/quantize.h"

namespace qf::analysis {

bool is_quantizable(const Tensor& t) { return t.ndim() >= 2 && dtype_is_float(t.dtype()); }

TensorQuantError evaluate_scheme(const Tensor& tensor, const quant::Scheme& scheme) {
  TensorQuantError r;
  r.numel = tensor.numel();
  r.original_bytes = tensor.nbytes();
  r.quantized_bytes = r.original_bytes;
  if (!is_quantizable(tensor)) return r;
  const Tensor f32 = tensor.to_f32();
  const quant::QuantizedTensor q = quant::quantize(f32, scheme);
  const Tensor back = quant::dequantize(q);
  const std::span<const float> x(f32.data<float>(), static_cast<size_t>(f32.numel()));
  const std::span<const float> y(back.data<float>(), static_cast<size_t>(back.numel()));
  r.quantized = true;
  r.quantized_bytes = q.storage_bytes();
  r.metrics = quant::measure_error(x, y);
  r.signal_power = r.metrics.signal_power;
  r.noise_power = r.metrics.noise_power;
  return r;
}

SchemeSummary summarize(std::span<const TensorQuantError> tensors) {
  SchemeSummary s;
  double signal = 0, noise = 0;
  int64_t quantized_values = 0;
  s.worst_sqnr_db = std::numeric_limits<double>::infinity();
  for (const auto& t : tensors) {
    s.params += t.numel;
    s.original_bytes += t.original_bytes;
    s.quantized_bytes += t.quantized_bytes;
    if (!t.quantized) continue;
    signal += t.signal_power;
    noise += t.noise_power;
    quantized_values += t.numel;
    s.worst_sqnr_db = std::min(s.worst_sqnr_db, t.metrics.sqnr_db);
  }
  s.bits_per_weight = s.params ? 8.0 * static_cast<double>(s.quantized_bytes) / static_cast<double>(s.params) : 0;
  s.sqnr_db = noise > 0 ? 10.0 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
  s.mse = quantized_values ? noise / static_cast<double>(quantized_values) : 0;
  if (quantized_values == 0) s.worst_sqnr_db = s.sqnr_db;
  return s;
}

}  // namespace qf::analysis
