#include "algo/channel_scaling.h"

#include "core/error.h"
#include "model/arch/family.h"
#include "model/linear_layers.h"

namespace qf::algo {

using model::InputSite;

namespace {

// A private F32 copy: copies of a Tensor share bytes, so writing in place
// would change the caller's model (or fail on a read-only mapped file).
float* writable(Tensor& t) {
  t = t.to_f32().clone();
  return t.mutable_data<float>();
}

// Row-major [rows, cols]: multiply row i by f[i - first] for rows [first, first + f.size()).
void scale_rows(Tensor& t, std::span<const double> f, int64_t first, bool invert) {
  const int64_t cols = t.cols();
  float* d = writable(t);
  for (size_t i = 0; i < f.size(); ++i) {
    float* row = d + (first + static_cast<int64_t>(i)) * cols;
    for (int64_t j = 0; j < cols; ++j)
      row[j] = static_cast<float>(invert ? row[j] / f[i] : row[j] * f[i]);
  }
}

void scale_vector(Tensor& t, std::span<const double> f, int64_t first, bool invert) {
  if (t.empty()) return;
  float* d = writable(t);
  for (size_t i = 0; i < f.size(); ++i) {
    float& v = d[first + static_cast<int64_t>(i)];
    v = static_cast<float>(invert ? v / f[i] : v * f[i]);
  }
}

// A norm weight that feeds the scaled site: its output is divided by s. Gemma
// stores (1 + w), so the offset must stay outside the division.
void scale_norm(const model::BlockSpec& spec, Tensor& w, std::span<const double> s) {
  if (spec.norm != model::NormKind::RMSPlusOne) return scale_vector(w, s, 0, true);
  float* d = writable(w);
  for (size_t i = 0; i < s.size(); ++i) d[i] = static_cast<float>((1.0 + d[i]) / s[i] - 1.0);
}

}  // namespace

Tensor scale_input_columns(const Tensor& out_in, std::span<const double> s, bool divide) {
  Tensor out = out_in.to_f32().clone();
  const int64_t rows = out.rows(), cols = out.cols();
  QF_CHECK(static_cast<int64_t>(s.size()) == cols, "{} scales for {} input columns", s.size(), cols);
  float* d = out.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const double v = divide ? d[r * cols + j] / s[static_cast<size_t>(j)] : d[r * cols + j] * s[static_cast<size_t>(j)];
      d[r * cols + j] = static_cast<float>(v);
    }
  return out;
}

bool can_scale_site(const model::ModelConfig& c, InputSite site) {
  switch (site) {
    case InputSite::AttnIn:
    case InputSite::FfnIn: return true;
    // v's rows feed o_proj's columns one to one only without grouped-query attention.
    case InputSite::AttnOut: return model::block_spec(c).fused_qkv || c.kv_dim() == c.q_dim();
    // up's rows feed down's columns through an elementwise product (GLU), not through GELU.
    case InputSite::FfnHidden: return model::block_spec(c).mlp != model::MlpKind::GeluTanh;
  }
  return false;
}

void apply_channel_scales(const model::ModelConfig& c, model::LayerWeights& w, InputSite site,
                          std::span<const double> s) {
  QF_CHECK(can_scale_site(c, site), "cannot fold per-channel scales into the producer of {} for {}",
           model::input_site_name(site), c.model_type);
  const model::BlockSpec& spec = model::block_spec(c);
  const int64_t layer = 0;
  for (const model::LinearLayer& l : model::block_linears(c, layer)) {
    if (l.site != site) continue;
    QF_CHECK(static_cast<int64_t>(s.size()) == l.in_features, "{} scales given for {} input channels of {}",
             s.size(), l.in_features, model::linear_kind_name(c, l.kind));
    Tensor& wt = model::linear_weight(w, l.kind);
    if (l.conv1d) {
      scale_rows(wt, s, 0, false);  // Conv1D [in, out]: input channels are rows
    } else {
      wt = scale_input_columns(wt, s);
    }
  }
  switch (site) {
    case InputSite::AttnIn:
      scale_norm(spec, w.attn_norm, s);
      scale_vector(w.attn_norm_bias, s, 0, true);
      break;
    case InputSite::FfnIn:
      scale_norm(spec, w.ffn_norm, s);
      scale_vector(w.ffn_norm_bias, s, 0, true);
      break;
    case InputSite::AttnOut:
      if (!spec.fused_qkv) {
        scale_rows(w.wv, s, 0, true);
        scale_vector(w.bv, s, 0, true);
      } else {
        // c_attn Conv1D [hidden, 3 * hidden]: v is output columns [2h, 3h).
        const int64_t h = c.hidden_size, cols = w.w_qkv.cols(), rows = w.w_qkv.rows();
        float* d = writable(w.w_qkv);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < h; ++j) d[r * cols + 2 * h + j] = static_cast<float>(d[r * cols + 2 * h + j] / s[static_cast<size_t>(j)]);
        scale_vector(w.b_qkv, s, 2 * h, true);
      }
      break;
    case InputSite::FfnHidden:
      scale_rows(w.w_up, s, 0, true);
      scale_vector(w.b_up, s, 0, true);
      break;
  }
}

}  // namespace qf::algo
