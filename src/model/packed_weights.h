// Quantized linear layers in the integer kernels' layout (kernels/packed_matrix.h),
// so the runtime runs them without a dequantized copy: resident weight memory
// is about the size of the quantized file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/packed_matrix.h"
#include "model/model.h"
#include "model/quantized_checkpoint.h"
#include "quant/quantize.h"

namespace qf::model {

// Whether the kernels run this scheme on a [rows, cols] weight: integer
// formats of 2, 3, 4 or 8 bits (8 bits symmetric only), per-tensor,
// per-channel or groups of 32 or a multiple of 64. Otherwise a reason for the
// notice ("nf4 is a codebook format", "group size 16 ...").
bool kernels_support(const quant::Scheme& scheme, int64_t cols, std::string* why_not = nullptr);

// `q` ([out, in]) repacked for the kernels, reading its codes row by row (no
// float copy). Throws qf::Error when !kernels_support(q.scheme, q.cols()).
std::shared_ptr<const kernels::PackedMatrix> pack_for_kernels(const quant::QuantizedTensor& q);

// RTN quantization of a float [rows, cols] matrix straight into the kernels'
// layout, rows in parallel on `pool` (no QuantizedTensor in between). Same
// codes and parameters as pack_for_kernels(quant::quantize(w, scheme)).
std::shared_ptr<const kernels::PackedMatrix> rtn_pack(const float* w, int64_t rows, int64_t cols,
                                                      const quant::Scheme& scheme, ThreadPool& pool);

// The model of `qm` with every quantized linear layer packed for the kernels,
// releasing each QuantizedTensor once packed. Layers whose scheme the kernels
// do not run are dequantized into float weights instead, and named in
// `fallbacks` ("model.layers.0.mlp.up_proj (nf4:g64: nf4 is a codebook format)").
Model packed_model(QuantizedModel qm, std::vector<std::string>* fallbacks = nullptr);

// A float model's linear layers (and, with `head`, an untied lm_head)
// RTN-quantized with `scheme` and packed; the rest shares m's tensors. For
// speed measurements (qforge bench --types); the scheme must pass kernels_support.
Model rtn_packed_model(const Model& m, const quant::Scheme& scheme, bool head, int n_threads = 0);

}  // namespace qf::model
