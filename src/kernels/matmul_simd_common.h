// Plain C++ helpers of the SIMD matmul files (matmul_avx2.cpp,
// matmul_avxvnni.cpp, matmul_avx512.cpp). Deliberately in an anonymous
// namespace: every including file gets its own copy, compiled with its own
// instruction set, so the linker can never substitute an AVX-512 copy for
// another file's (which one shared inline function would allow).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "kernels/matmul_targets.h"
#include "kernels/two_level.h"

namespace qf::kernels::detail {
namespace {

// Calls f(std::integral_constant<int, i>) for i = 0 .. N-1 as straight-line
// code. Register tiles must be unrolled this way, not by loops the optimizer
// unrolls: GCC 12 keeps arrays indexed by such loops partly in memory or
// copies them between registers on every iteration, but scalarizes arrays
// whose indices are constants from the start.
template <int N, class F>
[[gnu::always_inline]] inline void unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }
  (std::make_integer_sequence<int, N>{});
}

// Of32 and Of16: every chunk holds whole groups (two or four), so their
// kernels keep one set of lane partials per chunk and give each lane its
// group's scale (scale_of reads the scale of a group index past the row's
// end, padding only, as 0).
enum class Groups { PerRow, Multiple64, Of32, Of16 };

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

struct Problem {
  const PackedMatrix* w;
  const Activations* x;
  float* y;
  int64_t ldy;
  bool accumulate;
  int64_t chunks;            // 64-weight chunks per row
  int64_t chunks_per_group;  // Multiple64 and PerRow
  const float* group_sums;   // [x.rows, groups]: sum of q (Int8) or x (F32) over each group's columns
  float* scale_scratch;      // two-level matrices: room for kMaxBlockRows rows of float scales
  int64_t scale_stride;      // floats per row of scale_scratch
};

// The most weight rows a kernel block works on at once (its NR).
inline constexpr int kMaxBlockRows = 4;

inline Groups groups_of(const PackedMatrix& w) {
  if (w.groups() == 1) return Groups::PerRow;
  if (w.group_size() == 16) return Groups::Of16;
  return w.group_size() == 32 ? Groups::Of32 : Groups::Multiple64;
}

inline float scale_of(const float* s, int64_t g, int64_t groups) { return g < groups ? s[g] : 0.0f; }

// Sums activation blocks of kSumBlock into group sums (groups start on a block, the padding sums to 0).
template <typename T>
void fill_group_sums(const PackedMatrix& w, const Activations& x, const T* block_sums, float* out) {
  const int64_t blocks = x.blocks(), gs = w.group_size();
  for (int64_t m = 0; m < x.rows; ++m)
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t b_end = min64(blocks, ((g + 1) * gs + kSumBlock - 1) / kSumBlock);
      T s = 0;
      for (int64_t b = g * gs / kSumBlock; b < b_end; ++b) s += block_sums[m * blocks + b];
      out[m * w.groups() + g] = static_cast<float>(s);
    }
}

inline Problem make_problem(const MatmulArgs& a, bool int8) {
  const PackedMatrix& w = *a.w;
  const Activations& x = *a.x;
  Problem p{&w, &x, a.y, a.ldy, a.accumulate, w.padded_cols() / kChunk, 0, nullptr, nullptr, 0};
  p.chunks_per_group = w.groups() == 1 ? p.chunks : w.group_size() / kChunk;
  // One scratch: the group sums, then (two-level) the block's float scales, 64-byte aligned rows.
  const int64_t sums_room = (x.rows * w.groups() + 15) / 16 * 16;
  p.scale_stride = w.two_level() ? (w.groups() + 15) / 16 * 16 : 0;
  float* sums = thread_scratch(sums_room + kMaxBlockRows * p.scale_stride);
  if (w.two_level()) p.scale_scratch = sums + sums_room;
  if (int8)
    fill_group_sums(w, x, x.block_sums.data(), sums);
  else
    fill_group_sums(w, x, x.f32_block_sums.data(), sums);
  p.group_sums = sums;
  return p;
}

// A two-level row's float scales, super * sub (two_level.h), with explicit
// vectors for ggml's 8 and 16 groups per super-block: GCC 12 vectorizes
// two_level.h's loop here by assembling vectors from scalar byte loads, which
// cost a GEMV a tenth of its time. The products are the same floats.
inline void form_row_scales(const int8_t* sub, const float* super, int64_t groups, int64_t per, float* out) {
  if (per != 8 && per != 16) return form_two_level(sub, super, groups, per, out);
  const int shift = per == 16 ? 4 : 3;
  int64_t g = 0;
#if defined(__AVX512F__)
  for (; g + 16 <= groups; g += 16) {
    const __m512 s = per == 16 ? _mm512_set1_ps(super[g >> 4])
                               : _mm512_insertf32x8(_mm512_set1_ps(super[g >> 3]), _mm256_set1_ps(super[(g >> 3) + 1]), 1);
    const __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sub + g)));
    _mm512_storeu_ps(out + g, _mm512_mul_ps(s, _mm512_cvtepi32_ps(v)));
  }
#endif
  for (; g + 8 <= groups; g += 8) {
    const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sub + g)));
    _mm256_storeu_ps(out + g, _mm256_mul_ps(_mm256_set1_ps(super[g >> shift]), _mm256_cvtepi32_ps(v)));
  }
  for (; g < groups; ++g) out[g] = super[g >> shift] * static_cast<float>(sub[g]);
}

// The float group scales of weight rows n0 .. n0 + NR - 1: the stored ones,
// or for a two-level matrix super * sub formed into the problem's scratch,
// once per block, before the block streams its codes (L1-resident, a few
// vector multiplies per 256 weights).
template <int NR>
struct BlockScales {
  const float* row[NR];
  [[gnu::always_inline]] BlockScales(const Problem& p, int64_t n0) {
    static_assert(NR <= kMaxBlockRows, "raise kMaxBlockRows");
    const PackedMatrix& w = *p.w;
    if (!w.two_level()) {
      unroll<NR>([&](auto r) { row[r] = w.row_scales(n0 + r); });
      return;
    }
    unroll<NR>([&](auto r) {
      float* out = p.scale_scratch + r * p.scale_stride;
      form_row_scales(w.row_sub_scales(n0 + r), w.row_super_scales(n0 + r), w.groups(), w.super_groups(), out);
      row[r] = out;
    });
  }
  const float* operator[](int r) const { return row[r]; }
};

// Decode reads each weight row once, NR rows side by side. The hardware
// prefetchers stop at 4 KB page boundaries, which a block of short rows
// crosses every few chunks, so the single-row (GEMV) loops prefetch the same
// bytes of the next block of NR rows while they work on this one, into L2
// (prefetcht1: measured 3-7% faster decode than prefetcht0 into L1 for int4
// and int8 alike, on 2 threads, A/B interleaved in one process). Made once
// per block: the distance takes a division, which GCC 12 otherwise repeats
// inside the group loops (W4A8 g128 ran a quarter slower from L2 for it).
inline constexpr int64_t kPrefetchBytes = 16384;  // at least this far ahead, in whole blocks
template <int MR, int NR, int Bits>
class NextRowsPrefetch {
 public:
  [[gnu::always_inline]] NextRowsPrefetch(const uint8_t* const* wr, int64_t row_bytes) {
    if constexpr (MR == 1) {
      const int64_t block = NR * row_bytes, ahead = block * ((kPrefetchBytes + block - 1) / block);
      unroll<NR>([&](auto r) { next_[r] = wr[r] + ahead; });
    }
  }
  // The cache lines that start within chunk j, each line once (a chunk of
  // fewer than 64 bytes shares its line with its neighbours).
  [[gnu::always_inline]] void chunk(int64_t j) const {
    if constexpr (MR == 1) {
      constexpr uint64_t kChunkBytes = 8 * Bits;
      const uint64_t first = kChunkBytes * static_cast<uint64_t>(j);
      const uint64_t line = (first + kChunkBytes - 1) & ~uint64_t{63};
      if (line < first) return;
      // asm, not __builtin_prefetch: GCC 12 drops the builtin from some of these loops.
      // (The address is a local: clang 14 does not capture variables named only in asm operands.)
      unroll<NR>([&](auto r) {
        const char* address = reinterpret_cast<const char*>(next_[r] + line);
        asm volatile("prefetcht1 %0" : : "m"(*address));
      });
    }
  }

 private:
  const uint8_t* next_[NR] = {};
};

inline void store(const Problem& p, int64_t m, int64_t n, float v) {
  float& y = p.y[m * p.ldy + n];
  y = p.accumulate ? y + v : v;
}

// Output rows [nb, ne) for activation rows [m0, m0 + MR), NR weight rows at a time.
template <class K, int MR, int NR>
void row_tiles(const Problem& p, int64_t m0, int64_t nb, int64_t ne) {
  int64_t n = nb;
  for (; n + NR <= ne; n += NR) K::template block<MR, NR>(p, m0, n);
  for (; n < ne; ++n) K::template block<MR, 1>(p, m0, n);
}

// Decode (one activation row) streams the weights once, GemvNR rows side by
// side. Prefill walks panels of weight rows small enough to stay in L2 while
// every MR-row block of activations (in L1) passes over them.
template <class K, int MR, int NR, int GemvNR>
void run_blocked(const Problem& p, int64_t n_begin, int64_t n_end) {
  const int64_t rows = p.x->rows;
  if (rows == 1) return row_tiles<K, 1, GemvNR>(p, 0, n_begin, n_end);
  constexpr int64_t kPanelBytes = 192 * 1024;
  const int64_t panel = ((kPanelBytes / p.w->row_bytes()) / NR + 1) * NR;
  for (int64_t nb = n_begin; nb < n_end; nb += panel) {
    const int64_t ne = min64(n_end, nb + panel);
    int64_t m = 0;
    for (; m + MR <= rows; m += MR) row_tiles<K, MR, NR>(p, m, nb, ne);
    for (; m < rows; ++m) row_tiles<K, 1, NR>(p, m, nb, ne);
  }
}

}  // namespace
}  // namespace qf::kernels::detail
