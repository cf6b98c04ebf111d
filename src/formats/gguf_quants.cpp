#include "formats/gguf_quants.h"

#include <cmath>

#include "core/error.h"
#include "formats/gguf_quants_codecs.h"
#include "quant/row_codec.h"

namespace qf::formats {
namespace {

using gguf_detail::BlockCodec;

const BlockCodec* codec_of(GgmlType type) {
  if (const BlockCodec* c = gguf_detail::legacy_codec(type)) return c;
  return gguf_detail::k_codec(type);
}

const BlockCodec& require_codec(GgmlType type) {
  const BlockCodec* c = codec_of(type);
  QF_CHECK(c, "{} has no block encoder/decoder here (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K)",
           ggml_type_name(type));
  return *c;
}

size_t blocks_in(const BlockCodec& c, int64_t cols) {
  QF_CHECK(cols >= 0 && static_cast<size_t>(cols) % c.block == 0,
           "a row of {} values is not a whole number of {}-value {} blocks", cols, c.block, ggml_type_name(c.type));
  return static_cast<size_t>(cols) / c.block;
}

}  // namespace

bool gguf_is_codec_type(GgmlType type) { return codec_of(type) != nullptr; }

size_t gguf_row_bytes(GgmlType type, int64_t cols) {
  const BlockCodec& c = require_codec(type);
  return blocks_in(c, cols) * c.bytes;
}

void gguf_dequantize_row(GgmlType type, std::span<const std::byte> bytes, std::span<float> out) {
  const BlockCodec& c = require_codec(type);
  const size_t n = blocks_in(c, static_cast<int64_t>(out.size()));
  QF_CHECK(bytes.size() == n * c.bytes, "{} row of {} values needs {} bytes, got {}", ggml_type_name(type),
           out.size(), n * c.bytes, bytes.size());
  for (size_t b = 0; b < n; ++b) c.decode_block(bytes.data() + b * c.bytes, out.data() + b * c.block);
}

void gguf_quantize_row(GgmlType type, std::span<const float> row, std::span<std::byte> out,
                       std::span<const float> importance) {
  const BlockCodec& c = require_codec(type);
  const size_t n = blocks_in(c, static_cast<int64_t>(row.size()));
  QF_CHECK(out.size() == n * c.bytes, "{} row of {} values needs {} bytes, got {}", ggml_type_name(type), row.size(),
           n * c.bytes, out.size());
  QF_CHECK(importance.empty() || importance.size() == row.size(), "{} importance weights for a row of {} values",
           importance.size(), row.size());
  c.encode_row(row, out.data(), importance);
}

Tensor gguf_quantize_matrix(GgmlType type, const Tensor& weights, std::span<const float> column_importance) {
  QF_CHECK(dtype_is_float(weights.dtype()), "cannot quantize a {} tensor to {}", dtype_name(weights.dtype()),
           ggml_type_name(type));
  const Tensor w = weights.to_f32();
  const int64_t rows = w.rows(), cols = w.cols();
  const size_t row_bytes = gguf_row_bytes(type, cols);
  QF_CHECK(column_importance.empty() || static_cast<int64_t>(column_importance.size()) == cols,
           "{} importance weights for {} columns", column_importance.size(), cols);
  for (size_t i = 0; i < column_importance.size(); ++i)
    QF_CHECK(std::isfinite(column_importance[i]) && column_importance[i] >= 0.0f,
             "importance weight {} of column {} is not a finite non-negative number", column_importance[i], i);
  Tensor out = Tensor::zeros(DType::U8, {rows, static_cast<int64_t>(row_bytes)});
  auto* bytes = reinterpret_cast<std::byte*>(out.mutable_data<uint8_t>());
  for (int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row(w.data<float>() + r * cols, static_cast<size_t>(cols));
    if (!quant::group_stats(row).finite) quant::fail_nonfinite(row, 0, r);
    gguf_quantize_row(type, row, {bytes + r * static_cast<int64_t>(row_bytes), row_bytes}, column_importance);
  }
  return out;
}

Tensor gguf_dequantize_tensor(GgmlType type, std::span<const std::byte> bytes, const Shape& shape) {
  const uint64_t need = ggml_nbytes(type, shape);
  QF_CHECK(bytes.size() == need, "{} tensor of shape {} needs {} bytes, got {}", ggml_type_name(type),
           shape_to_string(shape), need, bytes.size());
  Tensor out = Tensor::zeros(DType::F32, shape);
  const int64_t cols = shape.empty() ? 1 : shape.back();
  const int64_t rows = cols == 0 ? 0 : out.numel() / cols;
  const size_t row_bytes = gguf_row_bytes(type, cols);
  float* o = out.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r)
    gguf_dequantize_row(type, bytes.subspan(static_cast<size_t>(r) * row_bytes, row_bytes),
                        {o + r * cols, static_cast<size_t>(cols)});
  return out;
}

}  // namespace qf::formats
