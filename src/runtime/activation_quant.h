// Simulated integer activations (the "A8" of W8A8): rounds a block of
// activations to the grid an integer kernel would see, so evaluation measures
// what activation quantization costs before integer kernels exist.
#pragma once

#include <cstdint>

#include "model/model.h"

namespace qf::runtime {

// out[rows, cols] = dequant(quant(x)) under `aq` (mode != None). Dynamic per
// token: symmetric, scale = max|row| / qmax with the restricted range
// [-(2^(b-1)-1), 2^(b-1)-1] (an all-zero row stays zero). Static per tensor:
// q = clamp(round(x / scale) + zero_point), the symmetric restricted range or
// [0, 2^b - 1] when asymmetric. Rounding is half to even. out may alias x.
void fake_quantize_activations(const float* x, int64_t rows, int64_t cols, const model::ActivationQuant& aq,
                               float* out);

}  // namespace qf::runtime
