#pragma once

#include <CLI/CLI.hpp>

namespace qf::cli {

// `qforge train-qat MODEL -o OUT --weights SCHEME [--acts int8] --calib FILE --steps N --lr LR --seed S
//  [--blockwise [--e2e-steps N]]`: quantization-aware training (src/train/qat.h).
void register_train_qat(CLI::App& app);

}  // namespace qf::cli
