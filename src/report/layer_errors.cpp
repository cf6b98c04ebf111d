#include "report/layer_errors.h"

#include <cstring>
#include <map>

#include "core/error.h"
#include "report/histograms.h"
#include "report/token_kld.h"

namespace qf::report {
namespace {

void check_same_architecture(const model::Model& a, const model::Model& b) {
  const auto& x = a.config;
  const auto& y = b.config;
  QF_CHECK(x.n_layers == y.n_layers && x.hidden_size == y.hidden_size && x.vocab_size == y.vocab_size &&
               x.intermediate_size == y.intermediate_size && x.arch == y.arch,
           "{} is not a quantized version of {}: {} layers x {} hidden, vocab {} against {} x {}, vocab {}", b.source,
           a.source, y.n_layers, y.hidden_size, y.vocab_size, x.n_layers, x.hidden_size, x.vocab_size);
}

double mean(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.empty() || b.empty()) return a.empty() && b.empty();  // absent (e.g. Llama's norm biases)
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  return a.nbytes() == 0 || std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

}  // namespace

bool norms_match(const model::Model& fp32, const model::Model& quantized) {
  if (fp32.layers.size() != quantized.layers.size()) return false;
  for (size_t l = 0; l < fp32.layers.size(); ++l) {
    const auto &a = fp32.layers[l], &b = quantized.layers[l];
    if (!same_bytes(a.attn_norm, b.attn_norm) || !same_bytes(a.ffn_norm, b.ffn_norm) ||
        !same_bytes(a.attn_norm_bias, b.attn_norm_bias) || !same_bytes(a.ffn_norm_bias, b.ffn_norm_bias))
      return false;
  }
  return same_bytes(fp32.final_norm, quantized.final_norm);
}

std::vector<LayerError> layer_errors(const model::Model& fp32, const model::QuantizedModel& qm) {
  check_same_architecture(fp32, qm.model);
  std::map<std::string, const quant::QuantizedTensor*> by_name;
  for (const auto& l : qm.linears) by_name[l.name] = &l.weight;
  std::vector<LayerError> out;
  for (const model::LinearLayer& l : model::all_linears(fp32.config)) {
    LayerError e;
    e.layer = l;
    const auto it = by_name.find(l.name);
    if (it != by_name.end()) {
      const quant::QuantizedTensor& q = *it->second;
      const Tensor ref = model::weight_out_in(l, model::linear_weight(fp32.layers[static_cast<size_t>(l.layer)], l.kind));
      QF_CHECK(q.shape == ref.shape(), "{}: layer {} is {} in the quantized model but {} in {}", qm.model.source,
               l.name, shape_to_string(q.shape), shape_to_string(ref.shape()), fp32.source);
      const Tensor deq = quant::dequantize(q);
      e.scheme = q.scheme;
      e.bits_per_weight = q.bits_per_weight();
      e.metrics = quant::measure_error(std::span(ref.data<float>(), static_cast<size_t>(ref.numel())),
                                       std::span(deq.data<float>(), static_cast<size_t>(deq.numel())));
      e.grid = first_group_levels(q);
    }
    out.push_back(std::move(e));
  }
  return out;
}

void add_kld_contributions(const model::Model& fp32, const model::Model& dequantized,
                           std::span<const int32_t> tokens, const Tensor& base_logits, std::vector<LayerError>& layers,
                           int n_threads) {
  check_same_architecture(fp32, dequantized);
  for (LayerError& e : layers) {
    if (!e.scheme) continue;
    // Tensors share their bytes on copy: the mixed model costs one layer's
    // pointer swap, not a copy of the weights.
    model::Model mixed = fp32;
    const auto block = static_cast<size_t>(e.layer.layer);
    model::linear_weight(mixed.layers[block], e.layer.kind) =
        model::linear_weight(dequantized.layers[block], e.layer.kind);
    const Tensor logits = forward_logits(mixed, tokens, n_threads);
    e.kld = mean(kld_per_row(base_logits, logits));
  }
}

}  // namespace qf::report
