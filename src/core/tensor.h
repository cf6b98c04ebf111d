// A dense, contiguous, row-major tensor. Its bytes are either owned or a
// read-only view into memory someone else keeps alive (a memory-mapped file);
// copying a Tensor shares the bytes, `clone()` copies them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace qf {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
// Matrix view of a shape: cols = last dimension, rows = product of the rest
// (a 0-D or 1-D shape is one row). Tensor::rows()/cols() use these.
int64_t shape_cols(const Shape& shape);
int64_t shape_rows(const Shape& shape);
// numel(shape) * dtype_size(dtype), throwing when it overflows int64/size_t.
size_t shape_nbytes(DType dtype, const Shape& shape);
std::string shape_to_string(const Shape& shape);  // "[64, 172]"

class Tensor {
 public:
  Tensor() = default;

  // Zero-filled tensor that owns its bytes.
  static Tensor zeros(DType dtype, Shape shape);
  static Tensor from_f32(std::span<const float> values, Shape shape);
  // Read-only view of `data`; `owner` keeps the memory alive (may be null when
  // the caller guarantees the lifetime). The byte count must match dtype x shape.
  static Tensor view(DType dtype, Shape shape, const void* data,
                     std::shared_ptr<const void> owner);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return shape_nbytes(dtype_, shape_); }  // overflow-checked
  bool empty() const { return data_ == nullptr; }
  bool writable() const { return writable_; }

  // Matrix view of the data: cols = last dimension, rows = product of the rest
  // (a 1-D tensor is one row).
  int64_t cols() const;
  int64_t rows() const;

  const std::byte* bytes() const { return static_cast<const std::byte*>(data_); }
  std::byte* mutable_bytes();

  template <typename T>
  const T* data() const {
    check_element<T>();
    return static_cast<const T*>(data_);
  }
  template <typename T>
  T* mutable_data() {
    check_element<T>();
    return reinterpret_cast<T*>(mutable_bytes());
  }
  // All elements as fp32, converting from any numeric dtype.
  std::vector<float> to_f32_vector() const;
  Tensor to_f32() const;
  // Converts an F32 tensor to F32/F16/BF16/F8_E4M3/F8_E5M2 (round to nearest even, saturating FP8).
  Tensor cast(DType to) const;
  Tensor reshape(Shape shape) const;  // shares the bytes
  Tensor clone() const;               // owning deep copy
  // Rows [begin, begin + count) along the first dimension, sharing the bytes
  // (a read-only view that keeps the owner alive): how fused projections
  // (Phi-3's qkv_proj) are split without a copy.
  Tensor slice_rows(int64_t begin, int64_t count) const;

 private:
  template <typename T>
  void check_element() const {
    QF_CHECK(sizeof(T) == dtype_size(dtype_), "tensor of dtype {} accessed as a {}-byte element",
             dtype_name(dtype_), sizeof(T));
  }

  DType dtype_ = DType::F32;
  Shape shape_;
  void* data_ = nullptr;
  bool writable_ = false;
  std::shared_ptr<const void> owner_;
};

// The tensors stacked along the first dimension (same dtype, same trailing
// dimensions), in an owning tensor.
Tensor concat_rows(std::span<const Tensor> parts);

}  // namespace qf
