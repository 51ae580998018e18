// The reduced-precision products on AMX tiles (Intel's Advanced Matrix Extensions): a
// tile multiply-add takes 16 rows of A by 64 bytes of depth against 16 columns of W,
// 16 x 16 x 64 int8 (tdpbusd) or 16 x 16 x 32 bfloat16 (tdpbf16ps) products at once,
// several times what the AVX-512 dot products reach, so products of many rows (a
// batch's recurrent product, a chunk's input projection) run here.
//
// ReducedMatrix's panels are already laid out as AMX wants its second operand: per depth
// group, 16 columns of 4 bytes (int8: 4 values, bfloat16: 2), 64-byte rows. A tile gives
// the same int8 sums as the AVX-512 kernel (integers); its bfloat16 sums add the same
// exact products in an order of its own, so every bfloat16 product runs here where AMX
// is (reduced_precision.hpp).
#pragma once

#include <cstdint>

#include "lstmcore/reduced_values.hpp"

#if defined(__AMX_TILE__) && defined(__AMX_INT8__) && defined(__AMX_BF16__) && defined(__AVX512F__)
#define LSTMCORE_AMX 1
#include <immintrin.h>
#endif

namespace lstmcore {

// Whether this process may use AMX tiles: the CPU has them and Linux granted the
// process their state (asked once, on first use); false in a build without them, or
// when LSTMCORE_AMX=0 is set, or after amx_allowed(false) (tests compare both paths).
bool amx_enabled();
void amx_allowed(bool allowed);

#if defined(LSTMCORE_AMX)
namespace detail {

// Eight tiles of 16 rows of 64 bytes: C (tmm0-3), A (tmm4-5), W (tmm6-7).
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
inline constexpr TileConfig kTileConfig{};

// acc (32 rows, 32 columns, row stride 32): rows r0 .. r0 + 31 of A against panels p,
// p + 1 of W, over the whole depth. The matrix and the rows are padded (reduced_values.hpp)
// so that every tile is whole.
template <Precision kPrecision, typename Sum>
inline void amx_block(const ReducedMatrix& w, Index p, const ReducedRows& a, Index r0, Sum* acc) {
  const Index stride = a.row_bytes();
  const std::uint8_t* first = w.panel(p);
  const std::uint8_t* second = w.panel(p + 1);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (Index k = 0; k < w.depth_tiles(); ++k) {
    _tile_loadd(4, a.row(r0) + k * kReducedBlock, stride);
    _tile_loadd(5, a.row(r0 + kTileRows) + k * kReducedBlock, stride);
    _tile_loadd(6, first + k * kTileGroups * kReducedBlock, kReducedBlock);
    _tile_loadd(7, second + k * kTileGroups * kReducedBlock, kReducedBlock);
    if constexpr (kPrecision == Precision::int8) {
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    } else {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  constexpr Index kStride = 32 * sizeof(Sum);
  _tile_stored(0, acc, kStride);
  _tile_stored(1, acc + 16, kStride);
  _tile_stored(2, acc + 16 * 32, kStride);
  _tile_stored(3, acc + 16 * 32 + 16, kStride);
}

}  // namespace detail
#endif

}  // namespace lstmcore
