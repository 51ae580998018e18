// bfloat16 products of many rows on AVX2 builds (no AVX-512: AMD Zen 2 and 3, Intel's
// client cores), through float32's tile kernel (packed_product.hpp). reduced_avx2.hpp's
// kernel spends a shift and a mask on each half block of W for every two rows it
// multiplies, and holds only 8 accumulators beside the rows' even and odd values;
// float32's 6-row tiles hold 12 and run near the FMA peak. So each panel of W is widened
// to float32 once per block of rows, and every tile of the block runs against it.
//
// The sums stay those of reduced_avx2.hpp's kernel, bit for bit: both depth values of a
// pair are exact in float32, and the panel and the rows are laid out with each pair odd
// element first, so the tile kernel's one chain of FMAs per column, in depth order, makes
// the same FMAs in the same order from zero (a product that underflows or overflows
// float32 is rounded with its sum, as there). The depth is not blocked: blocks would add
// their partial sums to C apart.
#pragma once

#include "lstmcore/packed_product.hpp"
#include "lstmcore/reduced_avx2.hpp"
#include "lstmcore/reduced_values.hpp"
#include "lstmcore/threading.hpp"  // Range

// AVX2's float32 panels are as wide as a reduced panel, 16 columns (AVX-512's take 32).
#if defined(LSTMCORE_REDUCED_AVX2) && !defined(EIGEN_VECTORIZE_AVX512) && !defined(EIGEN_DONT_VECTORIZE)
#define LSTMCORE_BF16_TILES 1
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace lstmcore::detail {

// From this many rows (two float32 tiles) a bfloat16 product takes the tiles: with one
// tile, widening each panel cost about what the tile kernel gained.
constexpr Index kBf16TileRows = 2 * PanelLayout<float>::kRows;

// Rows per block: a block's float32 copy is what a thread keeps between calls, so a
// product of many rows (a long chunk of steps) does not hold a float32 copy of all of them.
constexpr Index kBf16BlockRows = 16 * PanelLayout<float>::kRows;

// Rows [first, first + rows) of `a` (bfloat16) as float32 tiles ([tile][k][kRows], the
// tile kernel's PackedTile), 2 * groups values deep, each pair odd element first. A
// tile's rows past its height are left unwritten: the kernel reads only its height.
inline void bf16_rows_as_tiles(const ReducedRows& a, Index first, Index rows, Index groups, float* tiles) {
  using L = PanelLayout<float>;
  for (Index tile = 0; tile < L::tiles(rows); ++tile) {
    const Index r0 = L::tile_first(rows, tile), height = L::tile_height(rows, tile);
    float* out = tiles + tile * 2 * groups * L::kRows;
    for (Index r = 0; r < height; ++r) {
      const std::uint8_t* row = a.row(first + r0 + r);
      for (Index g = 0; g < groups; ++g) {
        out[2 * g * L::kRows + r] = bfloat16_at(row, 2 * g + 1);
        out[(2 * g + 1) * L::kRows + r] = bfloat16_at(row, 2 * g);
      }
    }
  }
}

// Panel p of `w` (bfloat16) as a float32 panel ([k][16]), each pair odd element first.
inline void bf16_panel_as_floats(const ReducedMatrix& w, Index p, float* panel) {
  const std::uint8_t* blocks = w.panel(p);
  const __m256i odd_half = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (Index g = 0; g < w.groups(); ++g) {
    float* odd = panel + 2 * g * kReducedLanes;
    float* even = odd + kReducedLanes;
    for (int half = 0; half < 2; ++half) {
      const __m256i block =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks + g * kReducedBlock + 32 * half));
      _mm256_store_ps(odd + 8 * half, _mm256_castsi256_ps(_mm256_and_si256(block, odd_half)));
      _mm256_store_ps(even + 8 * half, _mm256_castsi256_ps(_mm256_slli_epi32(block, 16)));
    }
  }
}

// reduced_product's bfloat16 product of `rows` >= kBf16TileRows rows on the tiles, in
// blocks of at most kBf16BlockRows whose sizes differ by one row at most (each row's sums
// are its own, so the blocks do not change them), each panel as one depth block. The
// buffers are the calling thread's, kept between calls: a pass calls this every step.
inline void reduced_bf16_tiles(const ReducedMatrix& w, Range panels, const ReducedRows& a, Index rows,
                               ReducedOutput out, bool accumulate) {
  using L = PanelLayout<float>;
  static_assert(L::kWidth == kReducedLanes, "a reduced panel is one float32 panel");
  thread_local ProductWorkspace<float> workspace;
  const Index groups = w.groups(), depth = 2 * groups;
  const EvenBlocks blocks(rows, kBf16BlockRows);
  float* tiles = workspace.a(L::tiles(blocks.longest()) * L::kRows * depth);
  float* panel = workspace.b(depth * L::kWidth);
  for (Index b = 0, first = 0; b < blocks.count; ++b) {
    const Index block = blocks.size(b);
    bf16_rows_as_tiles(a, first, block, groups, tiles);
    for (Index p = panels.begin; p < panels.end; ++p) {
      bf16_panel_as_floats(w, p, panel);
      const Index column = p * kReducedLanes;
      multiply_packed<float>(tiles, block, depth, panel, std::min(kReducedLanes, w.rows() - column),
                             OutputRows<float>{out.data + column, out.stride}, first, accumulate,
                             LoneRow::as_in_tiles, std::max<Index>(depth, 1));
    }
    first += block;
  }
}

}  // namespace lstmcore::detail

#endif
