// Element types a Tensor can hold: every safetensors dtype plus the ones the
// quantizers produce. Packed sub-byte codes live in U8 tensors owned by
// quant::QuantizedTensor, whose scheme says how to read them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qf {

enum class DType : uint8_t {
  F64, F32, F16, BF16, F8_E4M3, F8_E5M2,
  I64, I32, I16, I8,
  U64, U32, U16, U8,
  Bool,
};

// Bytes per element.
size_t dtype_size(DType t);
// Canonical names as safetensors spells them ("F32", "BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);
bool dtype_is_float(DType t);

}  // namespace qf
