#include "formats/gguf_quants_search.h"

#include <algorithm>

namespace qf::formats::gguf_detail {
namespace {

// The signed value of largest magnitude (first one on ties), as ggml picks it.
float signed_absmax(std::span<const float> x) {
  float amax = 0.0f, max = 0.0f;
  for (const float v : x) {
    if (std::fabs(v) > amax) {
      amax = std::fabs(v);
      max = v;
    }
  }
  return max;
}

}  // namespace

float search_symmetric(std::span<const float> x, int nmax, std::span<const float> w, std::span<int8_t> codes) {
  const size_t n = x.size();
  const float max = signed_absmax(x);
  if (std::fabs(max) < kGroupEps) {
    std::fill(codes.begin(), codes.begin() + static_cast<std::ptrdiff_t>(n), int8_t{0});
    return 0.0f;
  }
  auto weight = [&](size_t i) { return w.empty() ? x[i] * x[i] : w[i]; };
  auto code = [&](float iscale, size_t i) { return std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1); };
  // Sums of the least-squares fit scale = sum(w x l) / sum(w l^2) for one grid.
  auto fit = [&](float iscale, float& sumlx, float& suml2) {
    sumlx = suml2 = 0.0f;
    for (size_t i = 0; i < n; ++i) {
      const int l = code(iscale, i);
      sumlx += weight(i) * x[i] * static_cast<float>(l);
      suml2 += weight(i) * static_cast<float>(l) * static_cast<float>(l);
    }
  };
  auto store = [&](float iscale) {
    for (size_t i = 0; i < n; ++i) codes[i] = static_cast<int8_t>(code(iscale, i) + nmax);
  };
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  fit(iscale, sumlx, suml2);
  store(iscale);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  // Maximizing sumlx^2 / suml2 minimizes the weighted squared error of the fit.
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    fit(iscale, sumlx, suml2);
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      store(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

float search_symmetric_refined(std::span<const float> x, int nmax, std::span<int8_t> codes) {
  const size_t n = x.size();
  const float max = signed_absmax(x);
  if (std::fabs(max) < kGroupEps) {
    std::fill(codes.begin(), codes.begin() + static_cast<std::ptrdiff_t>(n), int8_t{0});
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
    codes[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  // Coordinate descent: move one code at a time to its best value under the
  // current fit, keeping a move only when the fit improves.
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (size_t i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float li = static_cast<float>(codes[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx <= 0.0f) continue;
      float sl2 = suml2 - w * li * li;
      const int l = std::clamp(nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (l == codes[i]) continue;
      slx += w * x[i] * static_cast<float>(l);
      sl2 += w * static_cast<float>(l) * static_cast<float>(l);
      if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
        codes[i] = static_cast<int8_t>(l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (size_t i = 0; i < n; ++i) codes[i] = static_cast<int8_t>(codes[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

float search_scale_min(std::span<const float> x, int nmax, std::span<const float> w, std::span<uint8_t> codes,
                       float* min_out, float rmin, float rdelta, int nstep, bool use_mad) {
  const size_t n = x.size();
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (size_t i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  min = std::min(min, 0.0f);  // the grid always holds 0
  if (max == min) {
    std::fill(codes.begin(), codes.begin() + static_cast<std::ptrdiff_t>(n), uint8_t{0});
    *min_out = -min;
    return 0.0f;
  }
  auto error_of = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    codes[i] = static_cast<uint8_t>(std::clamp(nearest(iscale * (x[i] - min)), 0, nmax));
    best_error += w[i] * error_of(scale * static_cast<float>(codes[i]) + min - x[i]);
  }
  if (nstep < 1) {
    *min_out = -min;
    return scale;
  }
  uint8_t trial[256];  // sub-blocks are at most 32 long; a legacy block 32
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * static_cast<float>(step) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    for (size_t i = 0; i < n; ++i) {
      const int l = std::clamp(nearest(iscale * (x[i] - min)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    // Weighted least squares for x ~ s * l + m over the trial codes.
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0.0f) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0.0f) {  // the min is subtracted, so it may not turn positive
      this_min = 0.0f;
      this_scale = sum_xl / sum_l2;
    }
    float error = 0.0f;
    for (size_t i = 0; i < n; ++i)
      error += w[i] * error_of(this_scale * static_cast<float>(trial[i]) + this_min - x[i]);
    if (error < best_error) {
      std::copy(trial, trial + n, codes.begin());
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *min_out = -min;
  return scale;
}

float search_positive(std::span<const float> x, int nmax, std::span<const float> w, std::span<uint8_t> codes) {
  const size_t n = x.size();
  float max = 0.0f;
  for (const float v : x) max = std::max(max, v);
  if (max < kGroupEps) {
    std::fill(codes.begin(), codes.begin() + static_cast<std::ptrdiff_t>(n), uint8_t{0});
    return 0.0f;
  }
  auto code = [&](float iscale, size_t i) { return std::clamp(nearest(iscale * x[i]), 0, nmax); };
  auto mse = [&](float iscale) {
    const float scale = 1.0f / iscale;
    float e = 0.0f;
    for (size_t i = 0; i < n; ++i) {
      const float diff = x[i] - scale * static_cast<float>(code(iscale, i));
      e += w[i] * diff * diff;
    }
    return e;
  };
  float iscale = static_cast<float>(nmax) / max;
  float best = mse(iscale);
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float trial = (0.1f * static_cast<float>(step) + static_cast<float>(nmax)) / max;
    const float e = mse(trial);
    if (e < best) {
      best = e;
      iscale = trial;
    }
  }
  float sumlx = 0.0f, suml2 = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const int l = code(iscale, i);
    codes[i] = static_cast<uint8_t>(l);
    sumlx += w[i] * x[i] * static_cast<float>(l);
    suml2 += w[i] * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (size_t i = 0; i < n; ++i) {
      const float li = static_cast<float>(codes[i]);
      float slx = sumlx - w[i] * x[i] * li;
      float sl2 = suml2 - w[i] * li * li;
      if (!(slx > 0.0f && sl2 > 0.0f)) continue;
      const int l = std::clamp(nearest(x[i] * sl2 / slx), 0, nmax);
      if (l == codes[i]) continue;
      slx += w[i] * x[i] * static_cast<float>(l);
      sl2 += w[i] * static_cast<float>(l) * static_cast<float>(l);
      if (slx * slx * suml2 > sumlx * sumlx * sl2) {
        codes[i] = static_cast<uint8_t>(l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace qf::formats::gguf_detail
