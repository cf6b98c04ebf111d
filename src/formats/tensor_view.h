// Shared by the readers: wraps checkpoint bytes as a tensor without copying.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

#include "core/tensor.h"

namespace qf::formats {

// A zero-copy view when `data` is aligned to the element size. Otherwise a
// copy: typed access through a misaligned pointer is undefined behaviour, and
// only files from non-reference writers (or callers' unaligned buffers) hit it.
inline Tensor view_or_copy(DType dtype, Shape shape, const std::byte* data, const std::shared_ptr<const void>& owner) {
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(dtype) == 0)
    return Tensor::view(dtype, std::move(shape), data, owner);
  Tensor copy = Tensor::zeros(dtype, std::move(shape));
  if (copy.nbytes()) std::memcpy(copy.mutable_bytes(), data, copy.nbytes());
  return copy;
}

}  // namespace qf::formats
