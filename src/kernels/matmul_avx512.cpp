// AVX-512 F/BW/DQ/VL + VNNI kernels. Everything except the two detail::
// entry points stays in the anonymous namespace: this file is compiled with
// AVX-512 flags, and no function of it may be picked by the linker for code
// that runs on other CPUs.
//
// Both precisions share one shape of loop: a block of MR activation rows x NR
// weight rows, each 64-weight chunk of a weight row unpacked once into a
// register and used for all MR activation rows. Per group the int32 (Int8) or
// float (F32) lane partials are scaled by the group scale into float lane
// sums; the zero-point term sum_g s_g * z_g * sum(x over g) is subtracted once
// per output (zero_point_term), so the inner loops never touch zero points.
// Per-row groups with Int8 need no float lanes at all: the int32 dot is reduced
// exactly and scaled once, as the scalar reference does.
#include <immintrin.h>

#include <cstring>

// GCC 12's AVX-512 intrinsics start from self-initialized "undefined"
// registers, which its uninitialized-use warnings flag at every inlined call.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/matmul_simd_common.h"

namespace qf::kernels::detail {
namespace {

// sum_g s_g * z_g * group_sums[g] over one row's groups.
float zero_point_term(const float* s, const uint8_t* z, const float* sums, int64_t groups) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; g += 16) {
    const __mmask16 k = groups - g >= 16 ? __mmask16(0xffff) : __mmask16((1u << (groups - g)) - 1);
    const __m512 zs = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, z + g)));
    acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + g), zs), _mm512_maskz_loadu_ps(k, sums + g), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// --- unpacking -------------------------------------------------------------

// Chunk j's 64 codes in natural order: unsigned for 2/3/4 bits, int8 for 8 bits.
template <int Bits>
__m512i load_codes(const uint8_t* row, int64_t j) {
  if constexpr (Bits == 8) {
    return _mm512_loadu_si512(row + 64 * j);
  } else if constexpr (Bits == 4) {
    // Both 256-bit halves hold the 32 bytes; the upper one keeps the high nibbles.
    const __m512i b = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * j)));
    const __m512i v = _mm512_srlv_epi64(b, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0));
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
  } else {
    const uint8_t* c = row + (Bits == 2 ? 16 : 24) * j;
    const __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
    __m512i v = _mm512_and_si512(_mm512_srlv_epi64(b, _mm512_set_epi64(6, 6, 4, 4, 2, 2, 0, 0)), _mm512_set1_epi8(3));
    if constexpr (Bits == 3) {
      uint64_t high;
      std::memcpy(&high, c + 16, 8);
      v = _mm512_mask_add_epi8(v, _cvtu64_mask64(high), v, _mm512_set1_epi8(4));
    }
    return v;
  }
}

// Chunk j's codes as floats: out[q] holds weights 16q .. 16q + 15.
template <int Bits>
void load_codes_f32(const uint8_t* row, int64_t j, __m512 out[4]) {
  auto load16 = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  if constexpr (Bits == 8) {
    unroll<4>([&](auto q) { out[q] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(load16(row + 64 * j + 16 * q))); });
  } else if constexpr (Bits == 4) {
    const __m512i b0 = _mm512_cvtepu8_epi32(load16(row + 32 * j)), b1 = _mm512_cvtepu8_epi32(load16(row + 32 * j + 16));
    const __m512i nibble = _mm512_set1_epi32(0x0f);
    out[0] = _mm512_cvtepi32_ps(_mm512_and_si512(b0, nibble));
    out[1] = _mm512_cvtepi32_ps(_mm512_and_si512(b1, nibble));
    out[2] = _mm512_cvtepi32_ps(_mm512_srli_epi32(b0, 4));
    out[3] = _mm512_cvtepi32_ps(_mm512_srli_epi32(b1, 4));
  } else {
    const uint8_t* c = row + (Bits == 2 ? 16 : 24) * j;
    const __m512i b = _mm512_cvtepu8_epi32(load16(c));
    uint64_t high = 0;
    if constexpr (Bits == 3) std::memcpy(&high, c + 16, 8);
    unroll<4>([&](auto q) {
      __m512i v = _mm512_and_si512(_mm512_srli_epi32(b, 2 * q), _mm512_set1_epi32(3));
      if constexpr (Bits == 3)
        v = _mm512_mask_or_epi32(v, static_cast<__mmask16>(high >> (16 * q)), v, _mm512_set1_epi32(4));
      out[q] = _mm512_cvtepi32_ps(v);
    });
  }
}

// Chunk j's codes of 2/3/4 bits as vpermps indices: idx[q] for weights
// 16q .. 16q + 15. vpermps reads only the low 4 bits of each lane, so the
// 4-bit low nibbles need no mask, and 2-bit codes come with their neighbours'
// bits above them (lut_codes repeats the 2-bit table to match).
template <int Bits>
void load_code_indices(const uint8_t* row, int64_t j, __m512i idx[4]) {
  auto load16 = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  if constexpr (Bits == 4) {
    idx[0] = _mm512_cvtepu8_epi32(load16(row + 32 * j));
    idx[1] = _mm512_cvtepu8_epi32(load16(row + 32 * j + 16));
    idx[2] = _mm512_srli_epi32(idx[0], 4);
    idx[3] = _mm512_srli_epi32(idx[1], 4);
  } else {
    const uint8_t* c = row + (Bits == 2 ? 16 : 24) * j;
    const __m512i b = _mm512_cvtepu8_epi32(load16(c));
    uint64_t high = 0;
    if constexpr (Bits == 3) std::memcpy(&high, c + 16, 8);
    unroll<4>([&](auto q) {
      if constexpr (Bits == 2) {
        idx[q] = _mm512_srli_epi32(b, 2 * q);
      } else {
        const __m512i v = _mm512_and_si512(_mm512_srli_epi32(b, 2 * q), _mm512_set1_epi32(3));
        idx[q] = _mm512_mask_or_epi32(v, static_cast<__mmask16>(high >> (16 * q)), v, _mm512_set1_epi32(4));
      }
    });
  }
}

// The code each vpermps index stands for (see load_code_indices).
template <int Bits>
__m512 lut_codes() {
  if constexpr (Bits == 2) return _mm512_setr_ps(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
  return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

// Lanes 0-7 (weights 0-31 of chunk j) get group 2j's scale, lanes 8-15 group
// 2j+1's; a group past the row's end (padding only) gets 0.
__m512 pair_scales(const float* s, int64_t j, int64_t groups) {
  const float hi = 2 * j + 1 < groups ? s[2 * j + 1] : 0.0f;
  return _mm512_insertf32x8(_mm512_set1_ps(s[2 * j]), _mm256_set1_ps(hi), 1);
}

// Lanes 4q .. 4q+3 (weights 16q .. 16q+15 of chunk j) get group 4j+q's scale:
// groups of 16. Groups past the row's end (padding only) get 0.
__m512 quad_scales(const float* s, int64_t j, int64_t groups) {
  const int64_t left = groups - 4 * j;
  const __m128 four = _mm_maskz_loadu_ps(left >= 4 ? __mmask8(0xf) : __mmask8((1u << left) - 1), s + 4 * j);
  return _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                               _mm512_castps128_ps512(four));
}

// Calls group(g, chunks) for every group g of a row, where chunks(step) calls
// step(j) for each of group g's chunks. With Cpg > 0 the whole groups of Cpg
// chunks run in a loop of their own as straight-line code, and only a ragged
// last group in the general loop: one loop holding both kept GCC 12 from
// keeping the accumulators in registers.
template <int Cpg, class Group>
[[gnu::always_inline]] inline void for_each_group(const Problem& p, Group&& group) {
  int64_t g = 0;
  if constexpr (Cpg > 0) {
    for (const int64_t whole = p.chunks / Cpg; g < whole; ++g)
      group(g, [&](auto&& step) { unroll<Cpg>([&](auto i) { step(g * Cpg + i); }); });
  }
  for (; g < p.w->groups(); ++g) {
    group(g, [&](auto&& step) {
      const int64_t j_end = min64(p.chunks, (g + 1) * p.chunks_per_group);
      for (int64_t j = g * p.chunks_per_group; j < j_end; ++j) step(j);
    });
  }
}

// --- Int8 ------------------------------------------------------------------

// Cpg: chunks per group known at compile time (2 for groups of 128, the
// common case: its two steps then run without an inner loop), 0 when not.
template <int Bits, Groups G, int Cpg = 0>
struct Int8Kernel {
  template <int MR, int NR>
  static void block(const Problem& p, int64_t m0, int64_t n0) {
    const PackedMatrix& w = *p.w;
    const Activations& x = *p.x;
    const uint8_t* wr[NR];
    const int8_t* xr[MR];
    unroll<NR>([&](auto r) { wr[r] = w.row_codes(n0 + r); });
    const BlockScales<NR> sc(p, n0);
    const NextRowsPrefetch<MR, NR, Bits> prefetch(wr, w.row_bytes());
    unroll<MR>([&](auto m) { xr[m] = x.q_row(m0 + m); });
    // 8 bits: vpdpbusd multiplies unsigned by signed bytes, so the activations
    // go in offset by +128 and 128 * (code sum) comes out again: per row from
    // row_sums, per group from wsum (the same dot with 0x80 bytes).
    constexpr bool kGroupSums = Bits == 8 && G != Groups::PerRow;
    const __m512i offset = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i acc[MR][NR], wsum[NR];
    __m512 fsum[MR][NR];
    auto clear = [&] {
      unroll<MR>([&](auto m) { unroll<NR>([&](auto r) { acc[m][r] = _mm512_setzero_si512(); }); });
      if constexpr (kGroupSums) unroll<NR>([&](auto r) { wsum[r] = _mm512_setzero_si512(); });
    };
    auto step = [&](int64_t j) {
      prefetch.chunk(j);
      __m512i c[NR];
      unroll<NR>([&](auto r) { c[r] = load_codes<Bits>(wr[r], j); });
      if constexpr (kGroupSums) unroll<NR>([&](auto r) { wsum[r] = _mm512_dpbusd_epi32(wsum[r], offset, c[r]); });
      unroll<MR>([&](auto m) {
        const __m512i a = _mm512_load_si512(xr[m] + 64 * j);
        if constexpr (Bits == 8) {
          const __m512i au = _mm512_xor_si512(a, offset);
          unroll<NR>([&](auto r) { acc[m][r] = _mm512_dpbusd_epi32(acc[m][r], au, c[r]); });
        } else {
          unroll<NR>([&](auto r) { acc[m][r] = _mm512_dpbusd_epi32(acc[m][r], c[r], a); });
        }
      });
    };
    auto fold = [&](const __m512* scale) {
      unroll<MR>([&](auto m) {
        unroll<NR>([&](auto r) {
          __m512i v = acc[m][r];
          if constexpr (kGroupSums) v = _mm512_sub_epi32(v, wsum[r]);
          fsum[m][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), scale[r], fsum[m][r]);
        });
      });
    };

    if constexpr (G == Groups::PerRow) {
      clear();
      for (int64_t j = 0; j < p.chunks; ++j) step(j);
      unroll<MR>([&](auto m) {
        unroll<NR>([&](auto r) {
          const int64_t n = n0 + r;
          int32_t dot = _mm512_reduce_add_epi32(acc[m][r]);
          if constexpr (Bits == 8)
            dot -= 128 * w.row_sums()[n];
          else
            dot -= static_cast<int32_t>(w.row_zeros(n)[0]) * static_cast<int32_t>(p.group_sums[m0 + m]);
          store(p, m0 + m, n, x.scale[m0 + m] * (sc[r][0] * static_cast<float>(dot)));
        });
      });
      return;
    }

    unroll<MR>([&](auto m) { unroll<NR>([&](auto r) { fsum[m][r] = _mm512_setzero_ps(); }); });
    __m512 scale[NR];
    if constexpr (G == Groups::Multiple64) {
      for_each_group<Cpg>(p, [&](int64_t g, auto&& chunks) {
        clear();
        chunks(step);
        unroll<NR>([&](auto r) { scale[r] = _mm512_set1_ps(sc[r][g]); });
        fold(scale);
      });
    } else {
      // Groups of 32 or 16: int32 lanes hold whole groups, each scaled by its own.
      for (int64_t j = 0; j < p.chunks; ++j) {
        clear();
        step(j);
        unroll<NR>([&](auto r) {
          scale[r] = G == Groups::Of16 ? quad_scales(sc[r], j, w.groups())
                                       : pair_scales(sc[r], j, w.groups());
        });
        fold(scale);
      }
    }
    unroll<MR>([&](auto m) {
      unroll<NR>([&](auto r) {
        const int64_t n = n0 + r;
        float v = _mm512_reduce_add_ps(fsum[m][r]);
        if (Bits != 8 && w.has_zero_points())
          v -= zero_point_term(sc[r], w.row_zeros(n), p.group_sums + (m0 + m) * w.groups(), w.groups());
        store(p, m0 + m, n, x.scale[m0 + m] * v);
      });
    });
  }
};

// --- F32 -------------------------------------------------------------------

// Per output two float lane partials (weights 0-31 and 32-63 of each chunk;
// with groups of 32 exactly the chunk's two groups), scaled into `total` per group.
template <int Bits, Groups G, int Cpg = 0>
struct F32Kernel {
  template <int MR, int NR>
  static void block(const Problem& p, int64_t m0, int64_t n0) {
    const PackedMatrix& w = *p.w;
    const Activations& x = *p.x;
    const uint8_t* wr[NR];
    const float* xr[MR];
    unroll<NR>([&](auto r) { wr[r] = w.row_codes(n0 + r); });
    const BlockScales<NR> sc(p, n0);
    const NextRowsPrefetch<MR, NR, Bits> prefetch(wr, w.row_bytes());
    unroll<MR>([&](auto m) { xr[m] = x.f32_row(m0 + m); });
    __m512 total[MR][NR], lo[MR][NR], hi[MR][NR];
    unroll<MR>([&](auto m) { unroll<NR>([&](auto r) { total[m][r] = _mm512_setzero_ps(); }); });
    auto clear = [&] {
      unroll<MR>([&](auto m) { unroll<NR>([&](auto r) { lo[m][r] = hi[m][r] = _mm512_setzero_ps(); }); });
    };
    auto step = [&](int64_t j) {
      prefetch.chunk(j);
      unroll<NR>([&](auto r) {
        __m512 c[4];
        load_codes_f32<Bits>(wr[r], j, c);
        unroll<MR>([&](auto m) {
          const float* xp = xr[m] + 64 * j;
          lo[m][r] = _mm512_fmadd_ps(c[0], _mm512_load_ps(xp), lo[m][r]);
          hi[m][r] = _mm512_fmadd_ps(c[2], _mm512_load_ps(xp + 32), hi[m][r]);
          lo[m][r] = _mm512_fmadd_ps(c[1], _mm512_load_ps(xp + 16), lo[m][r]);
          hi[m][r] = _mm512_fmadd_ps(c[3], _mm512_load_ps(xp + 48), hi[m][r]);
        });
      });
    };

    if constexpr (G == Groups::Of16) {
      // Four groups per chunk: c[q] is exactly group 4j + q, so its codes are
      // scaled in the register and one partial pair sums s * c * x.
      clear();
      for (int64_t j = 0; j < p.chunks; ++j) {
        prefetch.chunk(j);
        unroll<NR>([&](auto r) {
          __m512 c[4];
          load_codes_f32<Bits>(wr[r], j, c);
          const float* s = sc[r];
          unroll<4>([&](auto q) { c[q] = _mm512_mul_ps(c[q], _mm512_set1_ps(scale_of(s, 4 * j + q, w.groups()))); });
          unroll<MR>([&](auto m) {
            const float* xp = xr[m] + 64 * j;
            lo[m][r] = _mm512_fmadd_ps(c[0], _mm512_load_ps(xp), lo[m][r]);
            hi[m][r] = _mm512_fmadd_ps(c[2], _mm512_load_ps(xp + 32), hi[m][r]);
            lo[m][r] = _mm512_fmadd_ps(c[1], _mm512_load_ps(xp + 16), lo[m][r]);
            hi[m][r] = _mm512_fmadd_ps(c[3], _mm512_load_ps(xp + 48), hi[m][r]);
          });
        });
      }
      unroll<MR>([&](auto m) { unroll<NR>([&](auto r) { total[m][r] = _mm512_add_ps(lo[m][r], hi[m][r]); }); });
    } else if constexpr (G == Groups::Of32) {
      for (int64_t j = 0; j < p.chunks; ++j) {
        clear();
        step(j);
        unroll<NR>([&](auto r) {
          const float* s = sc[r];
          const __m512 s_lo = _mm512_set1_ps(s[2 * j]);
          const __m512 s_hi = _mm512_set1_ps(2 * j + 1 < w.groups() ? s[2 * j + 1] : 0.0f);
          unroll<MR>([&](auto m) {
            total[m][r] = _mm512_fmadd_ps(lo[m][r], s_lo, total[m][r]);
            total[m][r] = _mm512_fmadd_ps(hi[m][r], s_hi, total[m][r]);
          });
        });
      }
    } else if constexpr (Bits != 8) {
      // Codes of 2-4 bits index a 16-float table of the group's dequantized
      // values s * (c - z) (vpermps), which replaces the int-to-float conversion
      // and folds scale and zero point into the weights: every weight is
      // exactly what PackedMatrix::dequantize_row gives.
      const __m512 codes = lut_codes<Bits>();
      __m512 lut[NR];
      clear();
      for_each_group<Cpg>(p, [&](int64_t g, auto&& chunks) {
        unroll<NR>([&](auto r) {
          const float s = sc[r][g], z = static_cast<float>(w.row_zeros(n0 + r)[g]);
          lut[r] = _mm512_mul_ps(_mm512_set1_ps(s), _mm512_sub_ps(codes, _mm512_set1_ps(z)));
        });
        chunks([&](int64_t j) {
          prefetch.chunk(j);
          unroll<NR>([&](auto r) {
            __m512i idx[4];
            load_code_indices<Bits>(wr[r], j, idx);
            __m512 c[4];
            unroll<4>([&](auto q) { c[q] = _mm512_permutexvar_ps(idx[q], lut[r]); });
            unroll<MR>([&](auto m) {
              const float* xp = xr[m] + 64 * j;
              lo[m][r] = _mm512_fmadd_ps(c[0], _mm512_load_ps(xp), lo[m][r]);
              hi[m][r] = _mm512_fmadd_ps(c[2], _mm512_load_ps(xp + 32), hi[m][r]);
              lo[m][r] = _mm512_fmadd_ps(c[1], _mm512_load_ps(xp + 16), lo[m][r]);
              hi[m][r] = _mm512_fmadd_ps(c[3], _mm512_load_ps(xp + 48), hi[m][r]);
            });
          });
        });
      });
      unroll<MR>([&](auto m) {
        unroll<NR>([&](auto r) { store(p, m0 + m, n0 + r, _mm512_reduce_add_ps(_mm512_add_ps(lo[m][r], hi[m][r]))); });
      });
      return;
    } else {
      for_each_group<Cpg>(p, [&](int64_t g, auto&& chunks) {
        clear();
        chunks(step);
        unroll<NR>([&](auto r) {
          const __m512 s = _mm512_set1_ps(sc[r][g]);
          unroll<MR>([&](auto m) {
            total[m][r] = _mm512_fmadd_ps(_mm512_add_ps(lo[m][r], hi[m][r]), s, total[m][r]);
          });
        });
      });
    }
    unroll<MR>([&](auto m) {
      unroll<NR>([&](auto r) {
        const int64_t n = n0 + r;
        float v = _mm512_reduce_add_ps(total[m][r]);
        if (Bits != 8 && w.has_zero_points())
          v -= zero_point_term(sc[r], w.row_zeros(n), p.group_sums + (m0 + m) * w.groups(), w.groups());
        store(p, m0 + m, n, v);
      });
    });
  }
};

template <int Bits>
void int8_bits(const Problem& p, int64_t n_begin, int64_t n_end) {
  // Per-row groups keep only int32 accumulators live: 4 x 4 fits the 32 registers;
  // grouped shapes also keep float lane sums, hence 4 x 2.
  if (p.w->groups() == 1)
    run_blocked<Int8Kernel<Bits, Groups::PerRow>, 4, 4, 4>(p, n_begin, n_end);
  else if (p.w->group_size() == 16)
    run_blocked<Int8Kernel<Bits, Groups::Of16>, 4, 2, 4>(p, n_begin, n_end);
  else if (p.w->group_size() == 32)
    run_blocked<Int8Kernel<Bits, Groups::Of32>, 4, 2, 4>(p, n_begin, n_end);
  else if (p.chunks_per_group == 2)
    run_blocked<Int8Kernel<Bits, Groups::Multiple64, 2>, 4, 2, 4>(p, n_begin, n_end);
  else
    run_blocked<Int8Kernel<Bits, Groups::Multiple64>, 4, 2, 4>(p, n_begin, n_end);
}

template <int Bits>
void f32_bits(const Problem& p, int64_t n_begin, int64_t n_end) {
  if (p.w->group_size() == 16 && p.w->groups() > 1)
    run_blocked<F32Kernel<Bits, Groups::Of16>, 4, 2, 4>(p, n_begin, n_end);
  else if (p.w->group_size() == 32 && p.w->groups() > 1)
    run_blocked<F32Kernel<Bits, Groups::Of32>, 4, 2, 4>(p, n_begin, n_end);
  else if (p.w->groups() > 1 && p.chunks_per_group == 2)
    run_blocked<F32Kernel<Bits, Groups::Multiple64, 2>, 4, 2, 4>(p, n_begin, n_end);
  else
    run_blocked<F32Kernel<Bits, Groups::Multiple64>, 4, 2, 4>(p, n_begin, n_end);
}

}  // namespace

void matmul_int8_avx512vnni(const MatmulArgs& a) {
  const Problem p = make_problem(a, true);
  switch (a.w->bits()) {
    case 2: return int8_bits<2>(p, a.n_begin, a.n_end);
    case 3: return int8_bits<3>(p, a.n_begin, a.n_end);
    case 4: return int8_bits<4>(p, a.n_begin, a.n_end);
    default: return int8_bits<8>(p, a.n_begin, a.n_end);
  }
}

void matmul_f32_avx512(const MatmulArgs& a) {
  const Problem p = make_problem(a, false);
  switch (a.w->bits()) {
    case 2: return f32_bits<2>(p, a.n_begin, a.n_end);
    case 3: return f32_bits<3>(p, a.n_begin, a.n_end);
    case 4: return f32_bits<4>(p, a.n_begin, a.n_end);
    default: return f32_bits<8>(p, a.n_begin, a.n_end);
  }
}

}  // namespace qf::kernels::detail
