// Reduced-precision products on AVX2 and FMA, for CPUs with neither AVX-512 VNNI nor
// AVX512_BF16 (AMD Zen 2 and 3, Intel's client cores): reduced_values.hpp's packed blocks
// of 16 lanes, each taken as two 256-bit halves of 8 lanes.
//
// int8: vpmaddubsw multiplies unsigned bytes by signed ones into 16-bit pair sums that
// saturate, and (q_a + 128) * q_w would overflow them. Taking |q_a| as the unsigned side
// and q_w carrying q_a's sign as the signed one keeps each pair sum within 2 * 127 * 127,
// below 32767 (q_w = -128, whose negation wraps, is refused when W is made);
// vpmaddwd by ones then adds the pairs into int32 lanes. The sums are exact integers,
// the same as VNNI's and the portable loop's. |q_a| is taken once per word of A, so a
// row costs four instructions per half block.
// bfloat16: a bfloat16 is the top half of a float32, so a shift and a mask give a lane's
// even and odd elements as float32. One FMA per element, odd first: the product of two
// bfloat16 of normal size is exact in float32, so each FMA rounds as the portable loop's
// addition does, and the sums are its sums bit for bit. Only a product that underflows
// float32 (below 2^-126) or overflows it differs: the FMA rounds it with the sum, once,
// where the portable loop and the NumPy model round it first (a multiply then an add
// would agree there too, at twice the arithmetic instructions; benchmarks/INFERENCE.md).
#pragma once

#include "lstmcore/reduced_values.hpp"
#include "lstmcore/threading.hpp"  // Range

#if defined(__AVX2__) && defined(__FMA__)
#define LSTMCORE_REDUCED_AVX2 1
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace lstmcore::detail {

// Lanes [8 * half, 8 * half + 8) of a panel whose first `cols` lanes are rows of W, as
// the mask of AVX2's masked loads and stores (which do not touch the lanes left out).
inline __m256i lanes_within(Index cols, int half) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols - 8 * half)), lane);
}

// Row r of C's columns of panel p (+)= the sums of that row and panel, two halves:
// int8's dequantized as store_lanes does (float(sum) * (scale_a * scale_w), rounded
// before the addition), bfloat16's as they are.
// (The halves come by value: GCC kept an array passed by reference on the stack, stored
// and reloaded in the loop over the depth.)
template <Precision kPrecision, typename Acc>
EIGEN_ALWAYS_INLINE void store_halves(Acc low, Acc high, const ReducedMatrix& w, Index p, const ReducedRows& a,
                                      Index r, ReducedOutput out, bool accumulate) {
  const Index first = p * kReducedLanes;
  const Index cols = std::min(kReducedLanes, w.rows() - first);
  float* target = out.data + r * out.stride + first;
  for (int half = 0; half < 2 && 8 * half < cols; ++half) {
    // AMD's masked loads and stores are slow microcode: a whole half goes plainly.
    const bool whole = cols >= 8 * half + 8;
    const __m256i mask = lanes_within(cols, half);
    __m256 result;
    if constexpr (kPrecision == Precision::int8) {
      const float* scales = w.scales() + first + 8 * half;
      const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(a.scale(r)),
                                         whole ? _mm256_loadu_ps(scales) : _mm256_maskload_ps(scales, mask));
      result = _mm256_mul_ps(_mm256_cvtepi32_ps(half == 0 ? low : high), scale);
      __asm__("" : "+x"(result));  // as unfused(): no FMA with the addition below
    } else {
      result = half == 0 ? low : high;
    }
    float* lanes = target + 8 * half;
    if (accumulate) {
      result = _mm256_add_ps(whole ? _mm256_loadu_ps(lanes) : _mm256_maskload_ps(lanes, mask), result);
    }
    if (whole) {
      _mm256_storeu_ps(lanes, result);
    } else {
      _mm256_maskstore_ps(lanes, mask, result);
    }
  }
}

// R rows of A by P panels from panel p0: 2 * R * P accumulators (16 registers hold at
// most 8 of them beside the operands), each half block of W loaded once for the R rows.
template <Precision kPrecision, int R, int P>
inline void avx2_tile(const ReducedMatrix& w, Index p0, const ReducedRows& a, Index r0, ReducedOutput out,
                      bool accumulate) {
  static_assert(R * P <= 4, "more accumulators than registers");
  using Acc = std::conditional_t<kPrecision == Precision::int8, __m256i, __m256>;
  Acc acc[R][P][2];
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) {
      for (int half = 0; half < 2; ++half) {
        if constexpr (kPrecision == Precision::int8) {
          acc[r][p][half] = _mm256_setzero_si256();
        } else {
          acc[r][p][half] = _mm256_setzero_ps();
        }
      }
    }
  }
  const std::uint8_t* blocks[P];
  for (int p = 0; p < P; ++p) blocks[p] = w.panel(p0 + p);
  const std::uint8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = a.row(r0 + r);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i odd_half = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (Index g = 0; g < w.groups(); ++g) {
    if constexpr (kPrecision == Precision::int8) {
      __m256i sign[R], magnitude[R];  // of q_a: the stored q_a + 128 with its top bits flipped
      for (int r = 0; r < R; ++r) {
        std::uint32_t word;
        std::memcpy(&word, rows[r] + g * 4, 4);
        sign[r] = _mm256_set1_epi32(static_cast<int>(word ^ 0x80808080u));
        magnitude[r] = _mm256_abs_epi8(sign[r]);
      }
      for (int p = 0; p < P; ++p) {
        for (int half = 0; half < 2; ++half) {
          const __m256i block =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[p] + g * kReducedBlock + 32 * half));
          for (int r = 0; r < R; ++r) {
            const __m256i pairs = _mm256_maddubs_epi16(magnitude[r], _mm256_sign_epi8(block, sign[r]));
            acc[r][p][half] = _mm256_add_epi32(acc[r][p][half], _mm256_madd_epi16(pairs, ones));
          }
        }
      }
    } else {
      __m256 even[R], odd[R];
      for (int r = 0; r < R; ++r) {
        std::int32_t word;
        std::memcpy(&word, rows[r] + g * 4, 4);
        const __m256i pair = _mm256_set1_epi32(word);
        even[r] = _mm256_castsi256_ps(_mm256_slli_epi32(pair, 16));
        odd[r] = _mm256_castsi256_ps(_mm256_and_si256(pair, odd_half));
      }
      for (int p = 0; p < P; ++p) {
        for (int half = 0; half < 2; ++half) {
          const __m256i block =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[p] + g * kReducedBlock + 32 * half));
          const __m256 w_odd = _mm256_castsi256_ps(_mm256_and_si256(block, odd_half));
          const __m256 w_even = _mm256_castsi256_ps(_mm256_slli_epi32(block, 16));
          for (int r = 0; r < R; ++r) {
            acc[r][p][half] = _mm256_fmadd_ps(odd[r], w_odd, acc[r][p][half]);
            acc[r][p][half] = _mm256_fmadd_ps(even[r], w_even, acc[r][p][half]);
          }
        }
      }
    }
  }
  for (int p = 0; p < P; ++p) {
    for (int r = 0; r < R; ++r)
      store_halves<kPrecision>(acc[r][p][0], acc[r][p][1], w, p0 + p, a, r0 + r, out, accumulate);
  }
}

// A tile of `height` <= R rows by `width` <= P panels, from the largest instantiation down.
template <Precision kPrecision, int R, int P>
EIGEN_ALWAYS_INLINE void avx2_tiles_of(const ReducedMatrix& w, Index p0, Index width, const ReducedRows& a,
                                       Index r0, Index height, ReducedOutput out, bool accumulate) {
  if constexpr (R > 1) {
    if (height < R) return avx2_tiles_of<kPrecision, R - 1, P>(w, p0, width, a, r0, height, out, accumulate);
  }
  if constexpr (P > 1) {
    if (width < P) return avx2_tiles_of<kPrecision, R, P - 1>(w, p0, width, a, r0, height, out, accumulate);
  }
  avx2_tile<kPrecision, R, P>(w, p0, a, r0, out, accumulate);
}

// One row (a batch-1 step): four panels at a time, eight independent accumulators per
// word of A. More rows: two by two panels, each pair of panels against every pair of
// rows in turn, so that its blocks of W come from L1 after the first rows.
template <Precision kPrecision>
inline void reduced_avx2(const ReducedMatrix& w, Range panels, const ReducedRows& a, Index rows, ReducedOutput out,
                         bool accumulate) {
  if (rows == 1) {
    for (Index p = panels.begin; p < panels.end; p += 4) {
      avx2_tiles_of<kPrecision, 1, 4>(w, p, std::min<Index>(4, panels.end - p), a, 0, 1, out, accumulate);
    }
    return;
  }
  for (Index p = panels.begin; p < panels.end; p += 2) {
    for (Index r = 0; r < rows; r += 2) {
      avx2_tiles_of<kPrecision, 2, 2>(w, p, std::min<Index>(2, panels.end - p), a, r, std::min<Index>(2, rows - r),
                                      out, accumulate);
    }
  }
}

}  // namespace lstmcore::detail

#endif
