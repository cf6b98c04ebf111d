// Learnable fake quantization of a weight matrix (LSQ, Esser et al. 2020;
// zero points as in LSQ+, Bhalgat et al. 2020) with straight-through
// gradients. A linear layer's latent float weight W [out, in] and one scale
// (and, asymmetric, one zero point) per scale group of its integer scheme are
// trained; the forward uses
//   z = clamp(round(zero), qmin, qmax)            (asymmetric; 0 symmetric)
//   r = round(clamp(w / s, qmin - z, qmax - z))   (exactly quant::affine_quantize - z)
//   w' = s r                                      (exactly the dequantized code)
// with s the scale as the scheme stores it (quant::finish_scale), so the
// weights a training step sees are bit for bit the weights the exported
// QuantizedTensor dequantizes to. Gradients (round's derivative taken as 1):
//   dL/dw    = dL/dw'                 where w / s is inside the clamp, else 0
//   dL/ds    = g sum dL/dw' (r - w / s [inside])
//   dL/dzero = g sum dL/dw' (-s [clamped])
// over each group, with LSQ's gradient scale g = 1 / sqrt(n qmax) (n values
// in the group) so scales move at a pace comparable to the weights.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "quant/quantize.h"
#include "quant/scheme.h"

namespace qf::train {

struct FakeQuantParams {
  quant::Scheme scheme;
  int64_t rows = 0, cols = 0;
  int64_t param_rows = 0;  // rows, or 1 for per-tensor granularity
  int64_t groups = 0;      // scale groups per row
  int64_t group_size = 0;  // values per group (the last one of a row may be shorter)
  int32_t qmin = 0, qmax = 0;
  std::vector<float> scale;  // [param_rows, groups], > 0
  std::vector<float> zero;   // [param_rows, groups], asymmetric only (continuous; rounded in use)

  int64_t index(int64_t row, int64_t group) const { return (param_rows == 1 ? 0 : row) * groups + group; }
  bool asymmetric() const { return !scheme.symmetric; }
};

// Integer schemes only (codebook formats have no scale to learn per level);
// throws qf::Error naming the scheme otherwise. Initial parameters from
// quant::choose_params (RTN min-max) on `w` ([rows, cols] F32).
FakeQuantParams init_fake_quant(const Tensor& w, const quant::Scheme& scheme);

// The scale and integer zero point a group uses in the forward.
float effective_scale(const FakeQuantParams& p, int64_t idx);
int32_t effective_zero(const FakeQuantParams& p, int64_t idx);

// wq[rows, cols] = fake-quantized w.
void fake_quant_forward(const float* w, const FakeQuantParams& p, float* wq);
// From dwq (dL/dw'), writes dw and adds into dscale / dzero (sized like
// p.scale; dzero may be null for symmetric schemes).
void fake_quant_backward(const float* w, const FakeQuantParams& p, const float* dwq, float* dw, float* dscale,
                         float* dzero);

// Keeps scales positive and zero points inside the code range after an
// optimizer step.
void clamp_fake_quant(FakeQuantParams& p);

// The QuantizedTensor the forward simulates: codes of `w` under the learned
// parameters (dequantizes to fake_quant_forward's output exactly).
quant::QuantizedTensor export_quantized(const float* w, const FakeQuantParams& p);

}  // namespace qf::train
