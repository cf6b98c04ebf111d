// A tensor with its checkpoint name: the unit every reader returns and every
// writer consumes.
#pragma once

#include <string>

#include "core/tensor.h"

namespace qf::formats {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

}  // namespace qf::formats
