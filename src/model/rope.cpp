#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "core/error.h"

namespace qf::model {
namespace {

using nlohmann::json;

double rope_number(const json& j, const char* key, double fallback) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  QF_CHECK(j.at(key).is_number(), "rope_scaling \"{}\" must be a number, got {}", key, j.at(key).dump());
  return j.at(key).get<double>();
}

// transformers' float32 arange(0, dim, 2) / dim exponents, in double.
std::vector<double> plain_inv_freq(double base, int64_t dim) {
  std::vector<double> f(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i)
    f[static_cast<size_t>(i)] = 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(dim));
  return f;
}

}  // namespace

std::string rope_type_of(const json& rope) {
  if (!rope.is_object()) return "default";
  for (const char* key : {"rope_type", "type"})
    if (rope.contains(key) && rope.at(key).is_string()) return rope.at(key).get<std::string>();
  return "default";
}

void check_rope_scaling(const json& r, int64_t max_positions) {
  if (r.is_null()) return;
  QF_CHECK(r.is_object(), "rope_scaling must be an object or null, got {}", r.dump());
  const std::string type = rope_type_of(r);
  if (type == "default") return;
  QF_CHECK(type == "linear" || type == "dynamic" || type == "yarn" || type == "llama3" || type == "longrope",
           "rope_scaling type \"{}\" is not supported (supported: linear, dynamic, yarn, llama3, longrope)", type);
  if (type == "longrope") {
    for (const char* key : {"short_factor", "long_factor"}) {
      QF_CHECK(r.contains(key) && r.at(key).is_array() && !r.at(key).empty(),
               "rope_scaling longrope needs \"{}\" (a list of per-frequency factors)", key);
      for (const json& v : r.at(key))
        QF_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0,
                 "rope_scaling longrope \"{}\" must hold positive numbers, got {}", key, v.dump());
    }
    QF_CHECK(r.at("short_factor").size() == r.at("long_factor").size(),
             "rope_scaling longrope short_factor has {} entries but long_factor {}", r.at("short_factor").size(),
             r.at("long_factor").size());
    const double orig = rope_number(r, "original_max_position_embeddings", -1);
    QF_CHECK(orig >= 1, "rope_scaling longrope needs a positive original_max_position_embeddings");
    const double factor = rope_number(r, "factor", 1.0), attention = rope_number(r, "attention_factor", 1.0);
    QF_CHECK(std::isfinite(factor) && factor > 0 && std::isfinite(attention) && attention > 0,
             "rope_scaling longrope factor and attention_factor must be positive");
    return;
  }
  const double factor = rope_number(r, "factor", type == "yarn" ? 0.0 : -1.0);
  QF_CHECK(std::isfinite(factor) && (factor > 0 || (type == "yarn" && factor == 0)),
           "rope_scaling {} needs a positive \"factor\", got {}", type, r.contains("factor") ? r["factor"].dump() : "none");
  if (type == "llama3") {
    const double lo = rope_number(r, "low_freq_factor", -1), hi = rope_number(r, "high_freq_factor", -1);
    QF_CHECK(lo > 0 && hi > lo, "rope_scaling llama3 needs 0 < low_freq_factor < high_freq_factor, got {} and {}", lo,
             hi);
  }
  if (type == "yarn" || type == "llama3") {
    const double orig = rope_number(r, "original_max_position_embeddings", static_cast<double>(max_positions));
    QF_CHECK(orig >= 1, "rope_scaling {} original_max_position_embeddings must be positive, got {}", type, orig);
  }
}

bool rope_depends_on_length(const ModelConfig& c) {
  const std::string type = rope_type_of(c.rope_scaling);
  return type == "dynamic" || type == "longrope";
}

double longrope_attention_factor(const ModelConfig& c) {
  const json& r = c.rope_scaling;
  const double given = rope_number(r, "attention_factor", 0.0);
  if (given > 0) return given;
  const double orig = rope_number(r, "original_max_position_embeddings", static_cast<double>(c.max_positions));
  // Phi-3 gives no factor: the context was stretched from orig to max_positions.
  const double factor = rope_number(r, "factor", static_cast<double>(c.max_positions) / orig);
  return factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(factor) / std::log(orig));
}

std::vector<float> longrope_factors(const ModelConfig& c, bool long_context) {
  const json& list = c.rope_scaling.at(long_context ? "long_factor" : "short_factor");
  std::vector<float> out;
  for (const json& v : list) out.push_back(v.get<float>());
  return out;
}

RopeFrequencies rope_frequencies(const ModelConfig& c, bool sliding, int64_t seq_len) {
  const int64_t dim = c.head_dim;
  RopeFrequencies out;
  if (sliding && c.rope_local_theta > 0) {
    out.inv_freq = plain_inv_freq(c.rope_local_theta, dim);
    return out;
  }
  const json& r = c.rope_scaling;
  const std::string type = rope_type_of(r);
  const double base = c.rope_theta;
  out.inv_freq = plain_inv_freq(base, dim);
  if (type == "default") return out;
  const double factor = rope_number(r, "factor", 0.0);
  const double max_pos = static_cast<double>(c.max_positions);
  if (type == "linear") {
    for (double& f : out.inv_freq) f /= factor;
  } else if (type == "dynamic") {
    // NTK-aware: the base grows once the sequence outgrows the trained context.
    const double len = std::max(static_cast<double>(seq_len), max_pos);
    if (len > max_pos) {
      const double d = static_cast<double>(dim);
      const double grown = base * std::pow(factor * len / max_pos - (factor - 1.0), d / (d - 2.0));
      out.inv_freq = plain_inv_freq(grown, dim);
    }
  } else if (type == "llama3") {
    const double lo = rope_number(r, "low_freq_factor", 1), hi = rope_number(r, "high_freq_factor", 4);
    const double old_len = rope_number(r, "original_max_position_embeddings", max_pos);
    const double lo_wavelen = old_len / lo, hi_wavelen = old_len / hi;
    for (double& f : out.inv_freq) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > lo_wavelen) {
        f /= factor;  // long wavelengths: interpolated
      } else if (wavelen >= hi_wavelen) {
        const double smooth = (old_len / wavelen - lo) / (hi - lo);
        f = (1.0 - smooth) * f / factor + smooth * f;
      }  // short wavelengths: unchanged
    }
  } else if (type == "longrope") {
    // Per-frequency divisors, the long set once the sequence outgrows the
    // original context (transformers decides by the longest position, as here).
    const double orig = rope_number(r, "original_max_position_embeddings", max_pos);
    const json& ext = r.at(static_cast<double>(seq_len) > orig ? "long_factor" : "short_factor");
    QF_CHECK(ext.size() == out.inv_freq.size(), "rope_scaling longrope has {} factors for {} frequencies (head_dim / 2)",
             ext.size(), out.inv_freq.size());
    for (size_t i = 0; i < out.inv_freq.size(); ++i) out.inv_freq[i] /= static_cast<double>(ext[i].get<float>());
    out.attention_factor = longrope_attention_factor(c);
  } else if (type == "yarn") {
    const double orig = rope_number(r, "original_max_position_embeddings", max_pos);
    const double fac = factor > 0 ? factor : max_pos / orig;
    auto mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
    const double given = rope_number(r, "attention_factor", 0.0);
    const double ms = rope_number(r, "mscale", 0.0), ms_all = rope_number(r, "mscale_all_dim", 0.0);
    out.attention_factor = given > 0 ? given : (ms != 0 && ms_all != 0) ? mscale(fac, ms) / mscale(fac, ms_all)
                                                                         : mscale(fac, 1.0);
    const double beta_fast = rope_number(r, "beta_fast", 0.0) > 0 ? rope_number(r, "beta_fast", 0.0) : 32.0;
    const double beta_slow = rope_number(r, "beta_slow", 0.0) > 0 ? rope_number(r, "beta_slow", 0.0) : 1.0;
    const bool truncate = !r.contains("truncate") || !r.at("truncate").is_boolean() || r.at("truncate").get<bool>();
    const double d = static_cast<double>(dim);
    auto correction_dim = [&](double rotations) {
      return d * std::log(orig / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
    };
    double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
    if (truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, d - 1.0);
    if (low == high) high += 0.001;
    for (size_t i = 0; i < out.inv_freq.size(); ++i) {
      const double extrapolated = out.inv_freq[i], interpolated = extrapolated / fac;
      const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      const double keep = 1.0 - ramp;  // share of the extrapolated (unscaled) frequency
      out.inv_freq[i] = interpolated * (1.0 - keep) + extrapolated * keep;
    }
  }
  return out;
}

std::vector<float> rope_frequency_divisors(const ModelConfig& c) {
  ModelConfig plain = c;
  plain.rope_scaling = nullptr;
  const std::vector<double> base = rope_frequencies(plain, false, 1).inv_freq;
  const std::vector<double> scaled = rope_frequencies(c, false, 1).inv_freq;
  std::vector<float> out(base.size());
  for (size_t i = 0; i < base.size(); ++i) out[i] = static_cast<float>(base[i] / scaled[i]);
  return out;
}

namespace {

bool divisors_match(const ModelConfig& c, const json& rope, const std::vector<float>& divisors) {
  ModelConfig trial = c;
  trial.rope_scaling = rope;
  const std::vector<float> got = rope_frequency_divisors(trial);
  if (got.size() != divisors.size()) return false;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - divisors[i]) <= 1e-5f * std::abs(divisors[i]))) return false;
  return true;
}

}  // namespace

json llama3_rope_from_divisors(const ModelConfig& c, const std::vector<float>& divisors) {
  const size_t half = static_cast<size_t>(c.head_dim / 2);
  QF_CHECK(divisors.size() == half, "rope_freqs has {} entries; heads of {} dimensions need {}", divisors.size(),
           c.head_dim, half);
  double factor = 0;
  for (const float d : divisors) {
    QF_CHECK(std::isfinite(d) && d > 0, "rope_freqs holds {}, not a positive frequency divisor", d);
    factor = std::max(factor, static_cast<double>(d));
  }
  if (factor <= 1.0 + 1e-6) return nullptr;
  auto llama3 = [&](double lo, double hi, double old_len) {
    return json{{"rope_type", "llama3"},
                {"factor", factor},
                {"low_freq_factor", lo},
                {"high_freq_factor", hi},
                // transformers expects an int here (it warns otherwise)
                {"original_max_position_embeddings",
                 old_len == std::floor(old_len) ? json(static_cast<int64_t>(old_len)) : json(old_len)}};
  };
  if (json r = llama3(1.0, 4.0, 8192.0); divisors_match(c, r, divisors)) return r;
  // In the smooth band 1/d = (1 - s) / factor + s with s = a / wavelen + b,
  // a = old_len / (hi - lo), b = -lo / (hi - lo): fit a and b.
  ModelConfig plain = c;
  plain.rope_scaling = nullptr;
  const std::vector<double> inv = rope_frequencies(plain, false, 1).inv_freq;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int n = 0;
  for (size_t i = 0; i < half; ++i) {
    const double d = divisors[i];
    if (d <= 1.0 + 1e-6 || d >= factor * (1 - 1e-6)) continue;
    const double x = inv[i] / (2.0 * std::numbers::pi), y = (1.0 / d - 1.0 / factor) / (1.0 - 1.0 / factor);
    sx += x, sy += y, sxx += x * x, sxy += x * y, ++n;
  }
  const double det = n * sxx - sx * sx;
  if (n >= 2 && det > 0) {
    const double a = (n * sxy - sx * sy) / det, b = (sy - a * sx) / n;
    if (b < 0 && a > 0) {
      const double lo = 1.0, span = -lo / b;
      if (json r = llama3(lo, lo + span, a * span); divisors_match(c, r, divisors)) return r;
    }
  }
  // Fewer than two frequencies in the band (small heads, short contexts):
  // many parameter sets give these divisors; take one with low_freq_factor 1.
  constexpr double kHighFactors[] = {4, 2, 8, 16};
  if (n == 1) {
    for (const double hi : kHighFactors)
      if (json r = llama3(1.0, hi, (sy * (hi - 1.0) + 1.0) / sx); divisors_match(c, r, divisors)) return r;
  } else if (n == 0) {
    // Every divisor is 1 or the factor: the band lies between the longest
    // unscaled wavelength and the shortest interpolated one.
    double longest_kept = 0, shortest_scaled = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < half; ++i) {
      const double wavelen = 2.0 * std::numbers::pi / inv[i];
      if (divisors[i] <= 1.0 + 1e-6)
        longest_kept = std::max(longest_kept, wavelen);
      else
        shortest_scaled = std::min(shortest_scaled, wavelen);
    }
    const double pow2 = std::exp2(std::floor(std::log2(shortest_scaled)));
    for (const double old_len : {pow2 == shortest_scaled ? pow2 / 2 : pow2, shortest_scaled * (1 - 1e-9)})
      for (const double hi : kHighFactors)
        if (old_len / hi > longest_kept)
          if (json r = llama3(1.0, hi, old_len); divisors_match(c, r, divisors)) return r;
  }
  fail("rope_freqs (divisors from 1 to {}) match no llama3 rope_scaling; other per-frequency scalings are not "
       "supported",
       factor);
}

}  // namespace qf::model
