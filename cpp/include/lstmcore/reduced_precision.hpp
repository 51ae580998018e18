// Reduced-precision inference products: C (rows, n) (+)= A (rows, depth) W^T for W and A
// in reduced_values.hpp's forms.
//
// Kernels: AVX-512 VNNI (vpdpbusd: u8 x s8 -> s32, so activations are stored as
// q_a + 128 and 128 * sum_k q_w[j][k] taken off) and AVX512_BF16 (vdpbf16ps) where the
// build targets them, else AVX2 and FMA (reduced_avx2.hpp; bfloat16 products of 12 rows
// or more on float32's tiles: reduced_bf16_tiles.hpp), portable loops otherwise.
// They compute the same values: integer sums are exact, and each bfloat16 product of
// normal values is exact in float32, so adding the pairs in vdpbf16ps's order (odd
// element first) gives its roundings. (vdpbf16ps also flushes subnormals, which the
// others keep; the AVX2 kernel's FMAs round a product that underflows or overflows
// float32 with its sum, where the portable loop rounds it first.)
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lstmcore/reduced_amx.hpp"
#include "lstmcore/reduced_avx2.hpp"
#include "lstmcore/reduced_bf16_tiles.hpp"
#include "lstmcore/reduced_values.hpp"
#include "lstmcore/threading.hpp"  // Range

namespace lstmcore {

// Where AMX has them, bfloat16 products of any number of rows run there: its tiles add
// a depth tile's products in an order of their own (closer to the exact sum than
// vdpbf16ps's, but not equal to it), so that a sequence's result does not depend on the
// rows beside it, every product takes the same path. int8's sums are exact integers
// either way: from this many rows on AMX is faster.
constexpr Index kAmxInt8Rows = 16;

namespace detail {

// The value, as a register the compiler cannot see into: the scaling product before it
// is not fused with the addition after it (-ffp-contract=fast would make them one FMA,
// rounded once, where the NumPy model rounds twice, and only in some of the kernel's
// instantiations).
inline float unfused(float value) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(value));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(value));
#endif
  return value;
}

// One row of A against one panel, portable: the same sums as the SIMD kernels.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's -O3 loop vectorizer turned this function's bfloat16 sums into wrong ones
// (element 0 of a row counted twice: tests/test_quantize_kernels.py caught it in the
// portable build); the portable loop runs as written.
__attribute__((optimize("no-tree-loop-vectorize")))
#endif
inline void reduced_panel_portable(const ReducedMatrix& w, Index p, const ReducedRows& a, Index r, float* out,
                                   Index cols, bool accumulate) {
  const std::uint8_t* block = w.panel(p);
  const std::uint8_t* ar = a.row(r);
  float result[kReducedLanes];
  if (w.precision() == Precision::int8) {
    std::int32_t sum[kReducedLanes] = {};
    for (Index g = 0; g < w.groups(); ++g, block += kReducedBlock) {
      for (Index e = 0; e < 4; ++e) {
        const std::int32_t q = std::int32_t{ar[g * 4 + e]} - 128;
        for (Index lane = 0; lane < kReducedLanes; ++lane) {
          sum[lane] += q * static_cast<std::int8_t>(block[lane * 4 + e]);
        }
      }
    }
    const float scale_a = a.scale(r);
    for (Index lane = 0; lane < cols; ++lane) {
      const float scale = scale_a * w.scales()[p * kReducedLanes + lane];
      result[lane] = unfused(static_cast<float>(sum[lane]) * scale);
    }
  } else {
    // Lane by lane, each a chain of float32 additions the compiler keeps in order (GCC
    // 12's -O3 vectorized the lanes of the loop over groups into wrong sums).
    for (Index lane = 0; lane < cols; ++lane) {
      float total = 0.0f;
      const std::uint8_t* values = block + lane * 4;
      for (Index g = 0; g < w.groups(); ++g, values += kReducedBlock) {
        // Each product rounded apart (exact in float32 unless it underflows or
        // overflows), then added, odd element first, as vdpbf16ps and the NumPy model.
        total = total + unfused(bfloat16_at(ar, 2 * g + 1) * bfloat16_at(values, 1));
        total = total + unfused(bfloat16_at(ar, 2 * g) * bfloat16_at(values, 0));
      }
      result[lane] = total;
    }
  }
  for (Index lane = 0; lane < cols; ++lane) out[lane] = accumulate ? out[lane] + result[lane] : result[lane];
}

#if defined(LSTMCORE_INT8_VNNI) || defined(LSTMCORE_BF16_AVX512)
// acc + the dot products of a's and b's lanes, as one instruction in place: GCC 12
// copied every accumulator to a new register around each _mm512_dpbusd_epi32, twice the
// instructions of the dot products themselves.
#if defined(LSTMCORE_INT8_VNNI)
EIGEN_ALWAYS_INLINE __m512i dot(__m512i acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}
#endif
#if defined(LSTMCORE_BF16_AVX512)
EIGEN_ALWAYS_INLINE __m512 dot(__m512 acc, __m512i a, __m512i b) {
  __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}
#endif

// Row r of C's columns of panel p (+)= the sums `acc` of that row and panel: int8's
// dequantized (float(sum) * scale_a * scale_w), bfloat16's as they are.
template <Precision kPrecision, typename Acc>
EIGEN_ALWAYS_INLINE void store_lanes(const Acc& acc, const ReducedMatrix& w, Index p, const ReducedRows& a, Index r,
                                     ReducedOutput out, bool accumulate) {
  const Index first = p * kReducedLanes;
  const Index cols = std::min(kReducedLanes, w.rows() - first);
  const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1u);
  __m512 result;
  if constexpr (kPrecision == Precision::int8) {
    const __m512i offset = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(mask, w.sums() + first), 7);
    const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(a.scale(r)), _mm512_maskz_loadu_ps(mask, w.scales() + first));
    result = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, offset)), scale);
    __asm__("" : "+v"(result));  // as unfused(): no FMA with the addition below
  } else {
    result = acc;
  }
  float* target = out.data + r * out.stride + first;
  if (accumulate) result = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, target), result);
  _mm512_mask_storeu_ps(target, mask, result);
}

// R rows of A by P panels from panel p0: R * P accumulators, each block of W loaded once
// for the R rows.
template <Precision kPrecision, int R, int P>
inline void reduced_tile(const ReducedMatrix& w, Index p0, const ReducedRows& a, Index r0, ReducedOutput out,
                         bool accumulate) {
  using Acc = std::conditional_t<kPrecision == Precision::int8, __m512i, __m512>;
  Acc acc[R][P];
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) {
      if constexpr (kPrecision == Precision::int8) {
        acc[r][p] = _mm512_setzero_si512();
      } else {
        acc[r][p] = _mm512_setzero_ps();
      }
    }
  }
  const std::uint8_t* blocks[P];
  for (int p = 0; p < P; ++p) blocks[p] = w.panel(p0 + p);
  const std::uint8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = a.row(r0 + r);
  for (Index g = 0; g < w.groups(); ++g) {
    __m512i value[R];
    for (int r = 0; r < R; ++r) {
      std::int32_t word;
      std::memcpy(&word, rows[r] + g * 4, 4);
      value[r] = _mm512_set1_epi32(word);
    }
    for (int p = 0; p < P; ++p) {
      const __m512i block = _mm512_loadu_si512(blocks[p] + g * kReducedBlock);
      for (int r = 0; r < R; ++r) acc[r][p] = dot(acc[r][p], value[r], block);
    }
  }
  for (int p = 0; p < P; ++p) {
    for (int r = 0; r < R; ++r) store_lanes<kPrecision>(acc[r][p], w, p0 + p, a, r0 + r, out, accumulate);
  }
}

// Panels [p, p + P) against rows [r0, r0 + R).
template <Precision kPrecision, int P>
inline void reduced_panels(const ReducedMatrix& w, Index p, const ReducedRows& a, Index r0, Index rows,
                           ReducedOutput out, bool accumulate) {
  switch (rows) {
    case 4:
      return reduced_tile<kPrecision, 4, P>(w, p, a, r0, out, accumulate);
    case 3:
      return reduced_tile<kPrecision, 3, P>(w, p, a, r0, out, accumulate);
    case 2:
      return reduced_tile<kPrecision, 2, P>(w, p, a, r0, out, accumulate);
    default:
      return reduced_tile<kPrecision, 1, P>(w, p, a, r0, out, accumulate);
  }
}

// Four panels at a time (with one row, a batch-1 step, four independent accumulators per
// block of A and four blocks of W in flight), each group of panels against every tile of
// rows in turn, so that its blocks of W are read from L1 rather than L2 after the first
// tile.
template <Precision kPrecision>
inline void reduced_simd(const ReducedMatrix& w, Range panels, const ReducedRows& a, Index rows, ReducedOutput out,
                         bool accumulate) {
  for (Index p = panels.begin; p < panels.end; p += 4) {
    for (Index r = 0; r < rows; r += 4) {
      const Index height = std::min<Index>(4, rows - r);
      switch (std::min<Index>(4, panels.end - p)) {
        case 4:
          reduced_panels<kPrecision, 4>(w, p, a, r, height, out, accumulate);
          break;
        case 3:
          reduced_panels<kPrecision, 3>(w, p, a, r, height, out, accumulate);
          break;
        case 2:
          reduced_panels<kPrecision, 2>(w, p, a, r, height, out, accumulate);
          break;
        default:
          reduced_panels<kPrecision, 1>(w, p, a, r, height, out, accumulate);
          break;
      }
    }
  }
}

#if defined(LSTMCORE_AMX)
// Two panels of W at a time against every two tiles of rows: the panels' blocks come from
// L1 after the first tiles. The sums go through a (32, 32) buffer to store_lanes.
template <Precision kPrecision>
inline void reduced_amx(const ReducedMatrix& w, Range panels, const ReducedRows& a, Index rows, ReducedOutput out,
                        bool accumulate) {
  using Sum = std::conditional_t<kPrecision == Precision::int8, std::int32_t, float>;
  alignas(64) Sum sums[32 * 32];
  _tile_loadconfig(&kTileConfig);
  for (Index p = panels.begin; p < panels.end; p += 2) {
    for (Index r0 = 0; r0 < rows; r0 += 2 * kTileRows) {
      amx_block<kPrecision>(w, p, a, r0, sums);
      for (Index r = r0; r < std::min(rows, r0 + 2 * kTileRows); ++r) {
        for (Index q = p; q < std::min(panels.end, p + 2); ++q) {
          const Sum* lanes = sums + (r - r0) * 32 + (q - p) * 16;
          if constexpr (kPrecision == Precision::int8) {
            store_lanes<kPrecision>(_mm512_load_si512(lanes), w, q, a, r, out, accumulate);
          } else {
            store_lanes<kPrecision>(_mm512_load_ps(lanes), w, q, a, r, out, accumulate);
          }
        }
      }
    }
  }
  _tile_release();
}
#endif
#endif

}  // namespace detail

// Which kernels a precision runs on in this build: 'amx+avx512_vnni', 'avx512_vnni',
// 'amx_bf16', 'avx512_bf16', 'avx2' or 'portable'.
inline const char* reduced_kernel(Precision p) {
#if defined(LSTMCORE_INT8_VNNI)
  if (p == Precision::int8) return amx_enabled() ? "amx+avx512_vnni" : "avx512_vnni";
#endif
#if defined(LSTMCORE_BF16_AVX512)
  if (p == Precision::bfloat16) return amx_enabled() ? "amx_bf16" : "avx512_bf16";
#endif
#if defined(LSTMCORE_REDUCED_AVX2)
  return "avx2";
#else
  return "portable";
#endif
}

// A range of W's panels (kReducedLanes rows of W each, output columns of a product)
// aligned for every kernel: AMX takes panels two at a time.
constexpr Index kPanelAlign = 2;

// out's columns of panels `panels` of W, rows [0, rows), (+)= A W^T for the first `rows`
// rows of `a`: on AMX from a tile of rows on, where it has them, on AVX-512 for fewer (a
// batch-1 step), else on AVX2. `panels` starts at a multiple of kPanelAlign. Each output
// is summed in the same order whichever panels a call takes, so a product split over
// panels between threads gives the bits of the whole.
inline void reduced_product(const ReducedMatrix& w, Range panels, const ReducedRows& a, Index rows,
                            ReducedOutput out, bool accumulate) {
#if defined(LSTMCORE_AMX) && defined(LSTMCORE_INT8_VNNI) && defined(LSTMCORE_BF16_AVX512)
  if (amx_enabled()) {
    if (w.precision() == Precision::bfloat16) {
      return detail::reduced_amx<Precision::bfloat16>(w, panels, a, rows, out, accumulate);
    }
    if (rows >= kAmxInt8Rows) return detail::reduced_amx<Precision::int8>(w, panels, a, rows, out, accumulate);
  }
#endif
#if defined(LSTMCORE_INT8_VNNI)
  if (w.precision() == Precision::int8) {
    return detail::reduced_simd<Precision::int8>(w, panels, a, rows, out, accumulate);
  }
#endif
#if defined(LSTMCORE_BF16_AVX512)
  if (w.precision() == Precision::bfloat16) {
    return detail::reduced_simd<Precision::bfloat16>(w, panels, a, rows, out, accumulate);
  }
#endif
#if defined(LSTMCORE_REDUCED_AVX2)
  if (w.precision() == Precision::int8) {
    return detail::reduced_avx2<Precision::int8>(w, panels, a, rows, out, accumulate);
  }
#if defined(LSTMCORE_BF16_TILES)
  if (rows >= detail::kBf16TileRows) return detail::reduced_bf16_tiles(w, panels, a, rows, out, accumulate);
#endif
  return detail::reduced_avx2<Precision::bfloat16>(w, panels, a, rows, out, accumulate);
#endif
  for (Index r = 0; r < rows; ++r) {
    for (Index p = panels.begin; p < panels.end; ++p) {
      const Index first = p * kReducedLanes;
      detail::reduced_panel_portable(w, p, a, r, out.data + r * out.stride + first,
                                     std::min(kReducedLanes, w.rows() - first), accumulate);
    }
  }
}

// The product over all of W's panels.
inline void reduced_product(const ReducedMatrix& w, const ReducedRows& a, Index rows, ReducedOutput out,
                            bool accumulate) {
  reduced_product(w, {0, w.panels()}, a, rows, out, accumulate);
}

}  // namespace lstmcore
