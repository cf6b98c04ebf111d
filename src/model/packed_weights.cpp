#include "model/packed_weights.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <utility>

#include "core/error.h"
#include "model/linear_layers.h"
#include "quant/packing.h"
#include "quant/row_codec.h"

namespace qf::model {

bool kernels_support(const quant::Scheme& s, int64_t cols, std::string* why_not) {
  auto no = [&](std::string reason) {
    if (why_not) *why_not = std::move(reason);
    return false;
  };
  if (s.format != quant::Format::Int) return no(fmt::format("{} is not an integer format", s.to_string()));
  if (s.bits != 2 && s.bits != 3 && s.bits != 4 && s.bits != 8)
    return no(fmt::format("{}-bit codes have no kernel (2, 3, 4 and 8 do)", s.bits));
  if (s.bits == 8 && !s.symmetric) return no("8-bit kernels take symmetric codes only");
  const int64_t group = s.granularity == quant::Granularity::Group ? s.group_size : cols;
  if (!kernels::PackedMatrix::supports(s.bits, group, cols))
    return no(fmt::format("group size {} has no kernel (16, 32, multiples of 64 or whole rows do)", group));
  return true;
}

std::shared_ptr<const kernels::PackedMatrix> pack_for_kernels(const quant::QuantizedTensor& q) {
  const int64_t rows = q.rows(), cols = q.cols();
  std::string why;
  QF_CHECK(kernels_support(q.scheme, cols, &why), "cannot run {} on the integer kernels: {}", q.scheme.to_string(),
           why);
  const int64_t group = q.scheme.granularity == quant::Granularity::Group ? q.scheme.group_size : cols;
  auto packed = std::make_shared<kernels::PackedMatrix>(q.scheme.bits, rows, cols, group);
  const quant::ParamGrid params = quant::stored_params(q);  // decoded scales, per row (Tensor: one entry)
  const int64_t groups = packed->groups();
  QF_CHECK(params.groups == groups || params.rows == 1, "scale grid {}x{} does not match {} groups per row",
           params.rows, params.groups, groups);
  const int32_t bias = quant::code_bias(q.scheme);
  const size_t row_bytes = quant::packed_bytes(cols, q.scheme.bits);
  const uint8_t* codes = q.codes.data<uint8_t>();
  std::vector<uint8_t> row_codes(static_cast<size_t>(cols));
  std::vector<float> scales(static_cast<size_t>(groups));
  std::vector<uint8_t> zeros(static_cast<size_t>(groups));
  for (int64_t r = 0; r < rows; ++r) {
    quant::unpack_codes({codes + static_cast<size_t>(r) * row_bytes, row_bytes}, q.scheme.bits, row_codes);
    // Tensor granularity stores one (scale, zero) for every row and group.
    const auto p = params.rows == 1 ? params.row(0) : params.row(r);
    for (int64_t g = 0; g < groups; ++g) {
      const quant::GroupParams& gp = p[static_cast<size_t>(params.groups == 1 ? 0 : g)];
      scales[static_cast<size_t>(g)] = gp.scale;
      zeros[static_cast<size_t>(g)] = static_cast<uint8_t>(q.scheme.symmetric ? bias : gp.zero_point);
    }
    packed->set_row(r, row_codes, scales, zeros);
  }
  return packed;
}

std::shared_ptr<const kernels::PackedMatrix> rtn_pack(const float* w, int64_t rows, int64_t cols,
                                                      const quant::Scheme& s, ThreadPool& pool) {
  std::string why;
  QF_CHECK(kernels_support(s, cols, &why), "cannot run {} on the integer kernels: {}", s.to_string(), why);
  if (s.granularity == quant::Granularity::Tensor)  // one scale from the whole matrix
    return pack_for_kernels(quant::quantize(Tensor::view(DType::F32, {rows, cols}, w, nullptr), s));
  const int64_t G = s.values_per_scale(cols);
  auto packed = std::make_shared<kernels::PackedMatrix>(s.bits, rows, cols, G);
  const int64_t groups = packed->groups();
  const int32_t bias = quant::code_bias(s);
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(cols));
    std::vector<quant::GroupParams> params(static_cast<size_t>(groups));
    std::vector<float> scales(static_cast<size_t>(groups));
    std::vector<uint8_t> zeros(static_cast<size_t>(groups));
    for (int64_t r = r0; r < r1; ++r) {
      const std::span<const float> row(w + r * cols, static_cast<size_t>(cols));
      quant::choose_row_params(row, s, params, r);
      for (int64_t g = 0; g < groups; ++g) {
        const size_t b = static_cast<size_t>(g * G), n = static_cast<size_t>(std::min(G, cols - g * G));
        quant::encode_group(row.subspan(b, n), params[static_cast<size_t>(g)], s, std::span(codes).subspan(b, n));
        scales[static_cast<size_t>(g)] = params[static_cast<size_t>(g)].scale;
        zeros[static_cast<size_t>(g)] =
            static_cast<uint8_t>(s.symmetric ? bias : params[static_cast<size_t>(g)].zero_point);
      }
      packed->set_row(r, codes, scales, zeros);
    }
  });
  return packed;
}

Model packed_model(QuantizedModel qm, std::vector<std::string>* fallbacks) {
  Model m = std::move(qm.model);
  QF_CHECK(static_cast<int64_t>(m.layers.size()) == m.config.n_layers, "the model has {} layers, its config {}",
           m.layers.size(), m.config.n_layers);
  std::map<std::string, LinearLayer> known;
  for (LinearLayer& l : all_linears(m.config)) known.emplace(l.name, std::move(l));
  for (QuantizedLinear& ql : qm.linears) {
    const auto it = known.find(ql.name);
    QF_CHECK(it != known.end(), "{} is not a linear layer of this {} model", ql.name, m.config.model_type);
    const LinearLayer& l = it->second;
    LayerWeights& L = m.layers[static_cast<size_t>(l.layer)];
    std::string why;
    if (kernels_support(ql.weight.scheme, ql.weight.cols(), &why)) {
      L.packed[static_cast<size_t>(l.kind)] = pack_for_kernels(ql.weight);
      linear_weight(L, l.kind) = Tensor();
    } else {
      linear_weight(L, l.kind) = weight_to_stored(l, quant::dequantize(ql.weight));
      if (fallbacks) fallbacks->push_back(fmt::format("{} ({}: {})", ql.name, ql.weight.scheme.to_string(), why));
    }
    ql.weight = quant::QuantizedTensor();  // release the codes as soon as they are packed
  }
  return m;
}

Model rtn_packed_model(const Model& m, const quant::Scheme& scheme, bool head, int n_threads) {
  Model out = m;
  ThreadPool pool(n_threads);
  for (const LinearLayer& l : all_linears(m.config)) {
    LayerWeights& L = out.layers[static_cast<size_t>(l.layer)];
    Tensor& w = linear_weight(L, l.kind);
    const Tensor oi = weight_out_in(l, w);
    L.packed[static_cast<size_t>(l.kind)] = rtn_pack(oi.data<float>(), oi.dim(0), oi.dim(1), scheme, pool);
    w = Tensor();
  }
  if (head && !m.config.tie_embeddings) {
    out.lm_head_packed = rtn_pack(m.lm_head.data<float>(), m.lm_head.dim(0), m.lm_head.dim(1), scheme, pool);
    out.lm_head = Tensor();
  }
  return out;
}

}  // namespace qf::model
