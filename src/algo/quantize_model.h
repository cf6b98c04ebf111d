// The post-training quantization pipeline: a float model and calibration
// sequences in, a QuantizedModel out. Blocks are processed one at a time
// (algo/block_runner.h): block i is (smoothed or AWQ-scaled, then) quantized
// site by site in forward order (q/k/v, then o, then gate/up, then down:
// "true sequential", each site's statistics taken with the earlier sites
// already quantized), its activation quantizers are calibrated, and its
// quantized version produces the inputs of block i + 1.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "algo/awq.h"
#include "algo/gptq.h"
#include "calib/calibration_set.h"
#include "calib/observer.h"
#include "model/quantized_checkpoint.h"
#include "quant/scheme.h"

namespace qf::algo {

enum class Method { Rtn, Gptq, Awq, SmoothQuant };
Method parse_method(std::string_view name);  // "rtn" | "gptq" | "awq" | "smoothquant"
std::string_view method_name(Method m);

struct ActivationOptions {
  bool enabled = false;
  int bits = 8;
  bool symmetric = true;
  model::ActQuantMode mode = model::ActQuantMode::DynamicToken;
  calib::ObserverKind observer = calib::ObserverKind::MinMax;  // StaticTensor only
};

struct QuantizeOptions {
  Method method = Method::Rtn;
  quant::Scheme weights;
  ActivationOptions acts;
  GptqOptions gptq;
  AwqOptions awq;
  // SmoothQuant migration strengths tried per site besides no smoothing
  // (algo/smoothquant.h): the paper's 0.5, or a grid for a per-site search.
  std::vector<double> smooth_alphas = {0.5};
  bool bias_correction = false;
  // Mixed precision: > 0 picks a scheme per layer from `mp_candidates` so the
  // quantized layers' bits per weight (scales included) stay within it.
  double budget_bpw = 0.0;
  std::vector<quant::Scheme> mp_candidates;
  int64_t mp_sequences = 8;  // calibration sequences the sensitivity is measured on
  std::string skip;          // ECMAScript regex over module names: layers kept in float
  int n_threads = 0;
  std::function<void(const std::string&)> log;  // progress lines; may be empty
};

// Whether `options` needs calibration data at all (RTN weight-only does not).
bool needs_calibration(const QuantizeOptions& options);
// The default mixed-precision menu, all with fp16 scales (what llama.cpp-style
// formats store): int2 g32/g16 asymmetric (symmetric int2 has only three
// levels), int3 g64, g32 and g32 asymmetric, int4 g64 and g32, int8 g32. A
// menu with several sizes near the budget lets the allocation trade finely.
std::vector<quant::Scheme> default_mp_candidates();

struct LayerReport {
  std::string name;
  std::string scheme;
  double bits_per_weight = 0.0;
  int64_t weights = 0;
  double sensitivity = -1.0;  // mixed precision: KL of the chosen scheme alone; else -1
  double damp = -1.0;         // GPTQ's damping used; else -1
};

struct QuantizeReport {
  std::vector<LayerReport> layers;
  std::vector<std::string> notes;  // AWQ alphas, smoothing ratios, ...
  double bits_per_weight() const;  // over quantized layers, scales and zero points included
  int64_t quantized_weights() const;
};

// Throws qf::Error for options the method cannot do (AWQ with a per-tensor
// scheme, SmoothQuant without activation quantization, a calibrated method
// without sequences, a bad --skip regex, a budget below the cheapest choice).
model::QuantizedModel quantize_model(const model::Model& model, const std::vector<calib::TokenSequence>& calibration,
                                     const QuantizeOptions& options, QuantizeReport* report = nullptr);

}  // namespace qf::algo
