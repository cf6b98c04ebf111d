#include "algo/sensitivity.h"

#include "core/error.h"
#include "eval/evaluate.h"
#include "quant/quantize.h"
#include "runtime/runtime.h"

namespace qf::algo {

// Block by block, as the pipeline runs: the float hidden states at the input
// of block l are kept (one block's activations), and a layer of block l is
// judged by running only blocks l..end, one sequence at a time against that
// sequence's float logits (computed once), so the float blocks before l
// never rerun.
std::vector<LayerSensitivity> measure_sensitivity(const model::Model& model,
                                                  const std::vector<model::LinearLayer>& layers,
                                                  const std::vector<quant::Scheme>& candidates,
                                                  const std::vector<calib::TokenSequence>& sequences, int n_threads) {
  runtime::RuntimeOptions ro;
  ro.n_threads = n_threads;
  ro.context = static_cast<int64_t>(sequences.front().size());
  runtime::Runtime rt(model, ro);
  const int64_t n_layers = model.config.n_layers;

  // Hidden states -> logits from block `first` on, block `first` with `weights`.
  auto finish = [&](Tensor x, int64_t first, const model::LayerWeights& weights) {
    rt.forward_block(first, weights, x);
    for (int64_t b = first + 1; b < n_layers; ++b) rt.forward_block(b, model.layers[static_cast<size_t>(b)], x);
    return rt.head(x);
  };

  std::vector<Tensor> hidden;
  for (const auto& s : sequences) hidden.push_back(rt.embed(s));
  std::vector<LayerSensitivity> out;
  int64_t tokens = 0;
  for (const auto& h : hidden) tokens += h.dim(0);
  // The float logits of every sequence (sequences x tokens x vocab floats),
  // so each trial costs one partial forward per sequence.
  std::vector<Tensor> reference;
  for (const Tensor& h : hidden) reference.push_back(finish(h.clone(), 0, model.layers.front()));
  size_t next = 0;  // layers are ordered block by block
  for (int64_t l = 0; l < n_layers && next < layers.size(); ++l) {
    const model::LayerWeights& fp = model.layers[static_cast<size_t>(l)];
    for (; next < layers.size() && layers[next].layer == l; ++next) {
      const model::LinearLayer& ll = layers[next];
      LayerSensitivity ls{ll, {}, {}};
      const Tensor w = model::weight_out_in(ll, model::linear_weight(fp, ll.kind));
      for (const quant::Scheme& scheme : candidates) {
        const quant::QuantizedTensor q = quant::quantize(w, scheme);
        model::LayerWeights trial = fp;  // shares every tensor but the one replaced
        model::linear_weight(trial, ll.kind) = model::weight_to_stored(ll, quant::dequantize(q));
        double kl = 0.0;
        for (size_t i = 0; i < hidden.size(); ++i)
          kl += eval::kl_divergence_sum(reference[i], finish(hidden[i].clone(), l, trial));
        ls.kl.push_back(kl / static_cast<double>(tokens));
        ls.bits.push_back(static_cast<double>(q.storage_bytes()) * 8.0);
      }
      out.push_back(std::move(ls));
    }
    for (Tensor& h : hidden) rt.forward_block(l, fp, h);
  }
  QF_CHECK(next == layers.size(), "sensitivity: layers must be listed block by block");
  return out;
}

}  // namespace qf::algo
