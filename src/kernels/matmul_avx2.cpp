// AVX2 + FMA kernels: Int8 through vpmaddubsw (matmul_avx2_int8.inc) and F32
// with codes widened to floats eight at a time. The AVX-VNNI target reuses
// matmul_f32_avx2. Everything but the entry points stays file-local (see
// matmul_simd_common.h).
#include <immintrin.h>

#include <cstring>

#include "kernels/matmul_simd_common.h"

namespace qf::kernels::detail {
namespace {

// Four adjacent u8 * s8 products summed into int32 lanes; the int16 pair sums
// cannot saturate for the operands the kernels pass (see matmul_avx2_int8.inc).
__m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

#include "kernels/matmul_avx2_int8.inc"

// Chunk j's codes as floats: e[k] holds weights 8k .. 8k + 7.
template <int Bits>
void load_eighths(const uint8_t* row, int64_t j, __m256 e[8]) {
  auto load8 = [](const uint8_t* p) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)); };
  if constexpr (Bits == 8) {
    unroll<8>([&](auto k) { e[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(load8(row + 64 * j + 8 * k))); });
  } else if constexpr (Bits == 4) {
    unroll<4>([&](auto k) {
      const __m256i b = _mm256_cvtepu8_epi32(load8(row + 32 * j + 8 * k));
      e[k] = _mm256_cvtepi32_ps(_mm256_and_si256(b, _mm256_set1_epi32(0x0f)));
      e[k + 4] = _mm256_cvtepi32_ps(_mm256_srli_epi32(b, 4));
    });
  } else {
    const uint8_t* c = row + (Bits == 2 ? 16 : 24) * j;
    uint64_t high = 0;
    if constexpr (Bits == 3) std::memcpy(&high, c + 16, 8);
    unroll<2>([&](auto k) {
      const __m256i b = _mm256_cvtepu8_epi32(load8(c + 8 * k));
      unroll<4>([&](auto t) {
        // Byte i of the 16 holds weights i, 16 + i, 32 + i, 48 + i at shifts 0, 2, 4, 6.
        __m256i v = _mm256_and_si256(_mm256_srli_epi32(b, 2 * t), _mm256_set1_epi32(3));
        const int idx = 2 * t + k;
        if constexpr (Bits == 3) {
          const __m256i bits = _mm256_set1_epi32(static_cast<int32_t>(high >> (8 * idx) & 0xff) << 2);
          v = _mm256_or_si256(v, _mm256_and_si256(_mm256_srlv_epi32(bits, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                                                  _mm256_set1_epi32(4)));
        }
        e[idx] = _mm256_cvtepi32_ps(v);
      });
    });
  }
}

// F32: per output two float lane partials, weights 0-31 and 32-63 of each
// chunk (with groups of 32: the chunk's two groups), scaled into `total` per group.
template <int Bits, Groups G>
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
    __m256 total[MR][NR], lo[MR][NR], hi[MR][NR];
    unroll<MR>([&](auto m) { unroll<NR>([&](auto r) { total[m][r] = _mm256_setzero_ps(); }); });
    auto clear = [&] {
      unroll<MR>([&](auto m) { unroll<NR>([&](auto r) { lo[m][r] = hi[m][r] = _mm256_setzero_ps(); }); });
    };
    // Groups of 16 (four per chunk) would need four partials per output: their
    // codes are multiplied by the group scale in the register instead (each
    // eighth e[k] lies in group 4j + k / 2), and one partial pair sums s * c * x.
    auto step = [&](int64_t j) {
      prefetch.chunk(j);
      unroll<NR>([&](auto r) {
        __m256 e[8];
        load_eighths<Bits>(wr[r], j, e);
        if constexpr (G == Groups::Of16) {
          const float* s = sc[r];
          unroll<4>([&](auto q) {
            const __m256 sq = _mm256_set1_ps(scale_of(s, 4 * j + q, w.groups()));
            e[2 * q] = _mm256_mul_ps(e[2 * q], sq);
            e[2 * q + 1] = _mm256_mul_ps(e[2 * q + 1], sq);
          });
        }
        unroll<MR>([&](auto m) {
          const float* xp = xr[m] + 64 * j;
          unroll<4>([&](auto k) {
            lo[m][r] = _mm256_fmadd_ps(e[k], _mm256_load_ps(xp + 8 * k), lo[m][r]);
            hi[m][r] = _mm256_fmadd_ps(e[k + 4], _mm256_load_ps(xp + 32 + 8 * k), hi[m][r]);
          });
        });
      });
    };
    if constexpr (G == Groups::Of16) {
      clear();
      for (int64_t j = 0; j < p.chunks; ++j) step(j);
      unroll<MR>([&](auto m) { unroll<NR>([&](auto r) { total[m][r] = _mm256_add_ps(lo[m][r], hi[m][r]); }); });
    } else if constexpr (G == Groups::Of32) {
      for (int64_t j = 0; j < p.chunks; ++j) {
        clear();
        step(j);
        unroll<NR>([&](auto r) {
          const float* s = sc[r];
          const __m256 s_lo = _mm256_set1_ps(s[2 * j]);
          const __m256 s_hi = _mm256_set1_ps(2 * j + 1 < w.groups() ? s[2 * j + 1] : 0.0f);
          unroll<MR>([&](auto m) {
            total[m][r] = _mm256_fmadd_ps(lo[m][r], s_lo, total[m][r]);
            total[m][r] = _mm256_fmadd_ps(hi[m][r], s_hi, total[m][r]);
          });
        });
      }
    } else {
      for (int64_t g = 0; g < w.groups(); ++g) {
        clear();
        const int64_t j_end = min64(p.chunks, (g + 1) * p.chunks_per_group);
        for (int64_t j = g * p.chunks_per_group; j < j_end; ++j) step(j);
        unroll<NR>([&](auto r) {
          const __m256 s = _mm256_set1_ps(sc[r][g]);
          unroll<MR>([&](auto m) {
            total[m][r] = _mm256_fmadd_ps(_mm256_add_ps(lo[m][r], hi[m][r]), s, total[m][r]);
          });
        });
      }
    }
    unroll<MR>([&](auto m) {
      unroll<NR>([&](auto r) {
        const int64_t n = n0 + r;
        float v = hsum_ps(total[m][r]);
        if (Bits != 8 && w.has_zero_points())
          v -= zero_point_term(sc[r], w.row_zeros(n), p.group_sums + (m0 + m) * w.groups(), w.groups());
        store(p, m0 + m, n, v);
      });
    });
  }
};

template <int Bits>
void f32_bits(const Problem& p, int64_t n_begin, int64_t n_end) {
  if (groups_of(*p.w) == Groups::Of16)
    run_blocked<F32Kernel<Bits, Groups::Of16>, 2, 2, 4>(p, n_begin, n_end);
  else if (groups_of(*p.w) == Groups::Of32)
    run_blocked<F32Kernel<Bits, Groups::Of32>, 2, 2, 4>(p, n_begin, n_end);
  else
    run_blocked<F32Kernel<Bits, Groups::Multiple64>, 2, 2, 4>(p, n_begin, n_end);
}

}  // namespace

void matmul_int8_avx2(const MatmulArgs& a) { int8_entry(a); }

void matmul_f32_avx2(const MatmulArgs& a) {
  const Problem p = make_problem(a, false);
  switch (a.w->bits()) {
    case 2: return f32_bits<2>(p, a.n_begin, a.n_end);
    case 3: return f32_bits<3>(p, a.n_begin, a.n_end);
    case 4: return f32_bits<4>(p, a.n_begin, a.n_end);
    default: return f32_bits<8>(p, a.n_begin, a.n_end);
  }
}

}  // namespace qf::kernels::detail
