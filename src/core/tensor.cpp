#include "core/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/ranges.h>

#include "core/float_formats.h"

namespace qf {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    QF_CHECK(d >= 0, "negative dimension in shape {}", shape_to_string(shape));
    QF_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d, "shape {} overflows",
             shape_to_string(shape));
    n *= d;
  }
  return n;
}

size_t shape_nbytes(DType dtype, const Shape& shape) {
  const int64_t n = shape_numel(shape);
  const auto size = static_cast<int64_t>(dtype_size(dtype));
  QF_CHECK(n <= std::numeric_limits<int64_t>::max() / size, "shape {} of {} is more than 2^63 bytes",
           shape_to_string(shape), dtype_name(dtype));
  return static_cast<size_t>(n * size);
}

std::string shape_to_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  const size_t n = std::max<size_t>(t.nbytes(), 1);
  auto buffer = std::shared_ptr<std::byte[]>(new std::byte[n]());
  t.data_ = buffer.get();
  t.owner_ = std::shared_ptr<const void>(buffer, buffer.get());
  t.writable_ = true;
  return t;
}

Tensor Tensor::from_f32(std::span<const float> values, Shape shape) {
  Tensor t = zeros(DType::F32, std::move(shape));
  QF_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "{} values given for shape {}",
           values.size(), shape_to_string(t.shape()));
  if (!values.empty()) std::memcpy(t.data_, values.data(), values.size_bytes());
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  (void)t.nbytes();  // validates the shape and its byte count
  t.data_ = const_cast<void*>(data);
  t.owner_ = std::move(owner);
  t.writable_ = false;
  return t;
}

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int k = i < 0 ? n + i : i;
  QF_CHECK(k >= 0 && k < n, "dimension {} of a {}-d tensor", i, n);
  return shape_[k];
}

int64_t shape_cols(const Shape& shape) { return shape.empty() ? 1 : shape.back(); }
int64_t shape_rows(const Shape& shape) {
  const int64_t n = shape_numel(shape);
  const int64_t c = shape_cols(shape);
  return c == 0 ? 0 : n / c;
}

int64_t Tensor::cols() const { return shape_cols(shape_); }
int64_t Tensor::rows() const { return shape_rows(shape_); }

std::byte* Tensor::mutable_bytes() {
  QF_CHECK(writable_, "tensor is a read-only view; clone() it to modify");
  return static_cast<std::byte*>(data_);
}

std::vector<float> Tensor::to_f32_vector() const {
  const int64_t n = numel();
  std::vector<float> out(static_cast<size_t>(n));
  const std::byte* p = bytes();
  auto load = [&](auto tag, auto convert) {
    using T = decltype(tag);
    for (int64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, p + i * sizeof(T), sizeof(T));
      out[i] = convert(v);
    }
  };
  auto as_float = [](auto v) { return static_cast<float>(v); };
  switch (dtype_) {
    case DType::F64: load(double{}, as_float); break;
    case DType::F32: if (n) std::memcpy(out.data(), p, n * 4); break;
    case DType::F16: load(uint16_t{}, f16_to_f32); break;
    case DType::BF16: load(uint16_t{}, bf16_to_f32); break;
    case DType::F8_E4M3: load(uint8_t{}, f8e4m3_to_f32); break;
    case DType::F8_E5M2: load(uint8_t{}, f8e5m2_to_f32); break;
    case DType::I64: load(int64_t{}, as_float); break;
    case DType::I32: load(int32_t{}, as_float); break;
    case DType::I16: load(int16_t{}, as_float); break;
    case DType::I8: load(int8_t{}, as_float); break;
    case DType::U64: load(uint64_t{}, as_float); break;
    case DType::U32: load(uint32_t{}, as_float); break;
    case DType::U16: load(uint16_t{}, as_float); break;
    case DType::U8: load(uint8_t{}, as_float); break;
    case DType::Bool: load(uint8_t{}, [](uint8_t v) { return v ? 1.0f : 0.0f; }); break;
  }
  return out;
}

Tensor Tensor::to_f32() const {
  if (dtype_ == DType::F32) return *this;
  const auto values = to_f32_vector();
  return from_f32(values, shape_);
}

Tensor Tensor::cast(DType to) const {
  QF_CHECK(dtype_ == DType::F32, "cast() converts from F32, got {}", dtype_name(dtype_));
  Tensor out = zeros(to, shape_);
  const float* src = data<float>();
  const int64_t n = numel();
  auto store = [&](auto convert) {
    using T = decltype(convert(0.0f));
    T* dst = reinterpret_cast<T*>(out.mutable_bytes());
    for (int64_t i = 0; i < n; ++i) dst[i] = convert(src[i]);
  };
  switch (to) {
    case DType::F32: if (n) std::memcpy(out.mutable_bytes(), src, n * 4); break;
    case DType::F16: store(f32_to_f16); break;
    case DType::BF16: store(f32_to_bf16); break;
    case DType::F8_E4M3: store([](float x) { return f32_to_f8e4m3(x, true); }); break;
    case DType::F8_E5M2: store([](float x) { return f32_to_f8e5m2(x, true); }); break;
    default: fail("cast() to {} is not supported", dtype_name(to));
  }
  return out;
}

Tensor Tensor::reshape(Shape shape) const {
  QF_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_to_string(shape_),
           shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = zeros(dtype_, shape_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t count) const {
  QF_CHECK(ndim() >= 1, "slice_rows of a 0-d tensor");
  QF_CHECK(begin >= 0 && count >= 0 && begin + count <= shape_[0], "rows [{}, {}) outside a tensor of shape {}",
           begin, begin + count, shape_to_string(shape_));
  Shape shape = shape_;
  shape[0] = count;
  const size_t row_bytes = shape_[0] ? nbytes() / static_cast<size_t>(shape_[0]) : 0;
  Tensor t = view(dtype_, std::move(shape), bytes() + static_cast<size_t>(begin) * row_bytes, owner_);
  return t;
}

Tensor concat_rows(std::span<const Tensor> parts) {
  QF_CHECK(!parts.empty(), "concat_rows of no tensors");
  Shape shape = parts.front().shape();
  QF_CHECK(!shape.empty(), "concat_rows of 0-d tensors");
  int64_t rows = 0;
  for (const Tensor& p : parts) {
    Shape tail = p.shape();
    QF_CHECK(p.dtype() == parts.front().dtype() && !tail.empty() &&
                 std::equal(tail.begin() + 1, tail.end(), shape.begin() + 1, shape.end()),
             "concat_rows: {} {} does not stack onto {} {}", dtype_name(p.dtype()), shape_to_string(tail),
             dtype_name(parts.front().dtype()), shape_to_string(shape));
    rows += tail[0];
  }
  shape[0] = rows;
  Tensor out = Tensor::zeros(parts.front().dtype(), shape);
  std::byte* dst = out.mutable_bytes();
  for (const Tensor& p : parts) {
    if (p.nbytes()) std::memcpy(dst, p.bytes(), p.nbytes());
    dst += p.nbytes();
  }
  return out;
}

}  // namespace qf
