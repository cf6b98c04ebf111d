#include "algo/sensitivity.h"

#include "eval/evaluate.h"
#include "quant/quantize.h"
#include "runtime/runtime.h"

namespace qf::algo {

std::vector<LayerSensitivity> measure_sensitivity(const model::Model& model,
                                                  const std::vector<model::LinearLayer>& layers,
                                                  const std::vector<quant::Scheme>& candidates,
                                                  const std::vector<calib::TokenSequence>& sequences, int n_threads) {
  std::vector<eval::Window> windows;
  for (const auto& s : sequences) windows.push_back({s, 1});
  runtime::RuntimeOptions ro;
  ro.n_threads = n_threads;
  ro.context = static_cast<int64_t>(sequences.front().size());
  runtime::Runtime baseline(model, ro);

  std::vector<LayerSensitivity> out;
  for (const model::LinearLayer& l : layers) {
    LayerSensitivity ls{l, {}, {}};
    const Tensor& stored = model::linear_weight(model.layers[static_cast<size_t>(l.layer)], l.kind);
    const Tensor w = model::weight_out_in(l, stored);
    for (const quant::Scheme& scheme : candidates) {
      const quant::QuantizedTensor q = quant::quantize(w, scheme);
      model::Model trial = model;  // shares every tensor but the one replaced
      model::linear_weight(trial.layers[static_cast<size_t>(l.layer)], l.kind) =
          model::weight_to_stored(l, quant::dequantize(q));
      runtime::Runtime rt(trial, ro);
      const eval::EvalResult r = eval::evaluate(rt, &baseline, windows);
      ls.kl.push_back(r.kl_mean());
      ls.bits.push_back(static_cast<double>(q.storage_bytes()) * 8.0);
    }
    out.push_back(std::move(ls));
  }
  return out;
}

}  // namespace qf::algo
