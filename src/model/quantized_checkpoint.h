// A quantized model on disk: a Hugging Face style folder whose
// model.safetensors holds packed codes, scales and zero points for every
// quantized linear layer (and plain tensors for the rest), and whose
// config.json carries a "quantization_config" naming each layer's scheme and
// each activation quantizer. `qforge quantize` writes it; load_model reads it
// (dequantizing on load) so eval, generate and bench run it.
//
// Tensors of a quantized linear layer NAME (its HF module name):
//   NAME.weight_codes   U8 [out, packed_bytes(in, bits)]   (quant/packing.h)
//   NAME.weight_scales  [out, groups] F32 | F16 | I8 (pow2 exponents); [1, 1] per tensor
//   NAME.weight_zeros   U8, the scales' shape (asymmetric integer schemes only)
// always in [out, in] orientation, also for GPT-2 Conv1D layers (which the
// loader transposes back). NAME.bias, when present, stays a plain F32 tensor.
//
// config.json "quantization_config":
//   {"quant_method": "qforge", "format_version": 1,
//    "layers": {NAME: {"scheme": "int4:g32", "shape": [out, in]}, ...},
//    "activations": {"model.layers.N.attn_in": {"mode": "dynamic-token" | "static-tensor",
//                    "bits": 8, "symmetric": true, "scale": s, "zero_point": z}, ...},
//    ...whatever QuantizedModel::info holds (method, calibration settings)}
// Activation entries are keyed by block prefix ("model.layers.N" / "h.N") and
// input site name (model/linear_layers.h); "activations" is always present
// (possibly empty). dynamic-token entries carry no scale or zero_point (their
// scale is chosen at run time); static scales are written as the exact double
// of the float so they read back bit for bit.
//
// Llama biases on o/gate/up/down (bias correction) are written the way
// transformers' LlamaConfig groups them: "attention_bias" (q, k, v, o) and
// "mlp_bias" (gate, up, down) are set, and the group's other layers get zero
// biases. Mistral and Qwen2 have no such flags; their extra biases are
// written as plain tensors that only our loader reads.
// One model.safetensors only: sharded quantized folders are not supported.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "quant/quantize.h"
#include "tokenizer/vocab.h"

namespace qf::model {

struct QuantizedLinear {
  std::string name;               // HF module name (LinearLayer::name)
  quant::QuantizedTensor weight;  // [out, in]
};

struct QuantizedModel {
  // Every tensor that stays float (embeddings, norms, biases, the head) and the
  // activation quantizers. The weights of layers listed in `linears` are not
  // written from here (they may be empty or hold anything).
  Model model;
  std::vector<QuantizedLinear> linears;
  // How the model was made (method, calibration settings, per-layer notes);
  // merged into quantization_config. Must not hold times or paths, so that the
  // same inputs give byte-identical files.
  nlohmann::json info = nlohmann::json::object();
};

// Writes dir/model.safetensors, dir/config.json and the tokenizer files (as
// save_hf_folder does), each atomically; `dir` is created if needed.
void save_quantized_folder(const std::string& dir, const QuantizedModel& qm, const tokenizer::Vocab& vocab,
                           const std::string& source);

// True when `path` (a folder, or a file beside its config.json) has a
// config.json whose quantization_config.quant_method is "qforge".
bool is_qforge_quantized(const std::string& path);

// Reads a folder written by save_quantized_folder: codes, scales and zero
// points bit for bit. Throws qf::Error naming the file and tensor for a
// missing or extra tensor, a shape or dtype that disagrees with the scheme, an
// unknown scheme, a zero point out of range, a non-finite or non-positive
// scale, or a malformed activation entry.
QuantizedModel load_quantized_folder(const std::string& path);

// The model with every quantized linear layer dequantized into an F32 weight
// in its stored orientation (the dequantize-on-load path).
Model dequantized_model(const QuantizedModel& qm);

}  // namespace qf::model
