// The matrix products of the core: C (rows, n) (+)= A (rows, K) * B (K, n).
//
// Why not Eigen's GEMM: the recurrent product is called every step with the same
// weights, and Eigen repacks both operands on every call; and Eigen's kernel reaches
// about half the FMA peak on the shapes here. So the core packs B once (a weight slice
// per pass, or a block of a big operand) into panels of kWidth columns ([panel][k][kWidth],
// zero padded), packs rows of A into tiles of kRows ([tile][k][kRows]) when a block of A
// meets many panels, or reads a small A (a step's h_{t-1} or da_t) in place, and
// multiplies them in a register-blocked kernel: kRows rows by two SIMD packets, 2*kRows
// accumulators.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "lstmcore/eigen_types.hpp"
#include "lstmcore/row_view.hpp"

namespace lstmcore {

template <typename Scalar>
struct PanelLayout {
  using Packet = typename Eigen::internal::packet_traits<Scalar>::type;
  static constexpr int kLanes = Eigen::internal::unpacket_traits<Packet>::size;
  static constexpr Index kWidth = 2 * kLanes;  // columns per panel of B: two packets
  // Rows per tile of A: 2*kRows accumulators, two B packets and a broadcast must stay in
  // registers. With 32 (AVX-512, NEON) 8 rows; with 16 (AVX2) 6. On AVX-512, 8 rows
  // against 6 ran a step's product faster, most at small batches (B=8).
  static constexpr Index kRows = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS >= 32 ? 8 : 6;

  static Index panels(Index n) { return (n + kWidth - 1) / kWidth; }
  static Index size(Index n, Index depth) { return panels(n) * depth * kWidth; }
  static Index tiles(Index rows) { return (rows + kRows - 1) / kRows; }
  // Rows are spread evenly over the tiles, the first rows % tiles(rows) one row taller: two
  // FMA pipes of latency 4 or 5 need 8 to 10 accumulators busy, so a tile of r rows (2r
  // accumulators) takes about max(r, 5) cycles per k: with 6-row tiles 20 rows as 5+5+5+5
  // take 20 cycles per k where 6+6+6+2 took 23.
  static Index tile_first(Index rows, Index tile) {
    const Index count = tiles(rows);
    return tile * (rows / count) + std::min(tile, rows % count);
  }
  static Index tile_height(Index rows, Index tile) {
    const Index count = tiles(rows);
    return rows / count + (tile < rows % count ? 1 : 0);
  }
};

// Aligned storage whose elements start uninitialised: the packing routines write every
// element of their buffers, and clearing megabytes of packed weights per pass showed up in
// profiles of short sequences.
template <typename T>
struct UninitializedAllocator : Eigen::aligned_allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialised: no zeroing for float/double
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename Scalar>
using PackedBuffer = std::vector<Scalar, UninitializedAllocator<Scalar>>;

// How a tile of a single row sums its depth. `split`: by parity into two chains per
// packet (the batch-1 step, latency-bound with one). `as_in_tiles`: one chain, the order
// every row of a taller tile gets, so that in a batch whose sequences end at different
// steps (lengths) a row left alone keeps the bits it has beside the others.
enum class LoneRow { split, as_in_tiles };

// A forward over `batch` sequences splits only as a batch of one: a sequence alone.
inline LoneRow lone_row_of(Index batch) { return batch > 1 ? LoneRow::as_in_tiles : LoneRow::split; }

// The order in which a product of one tile of rows reads B's panels. A small batch's
// steps read all of W_hh each, and where W_hh is about the size of a core's L2, a sweep
// in one direction has evicted each panel before the next step reads it again; steps
// that alternate start on the panels the step before read last, still in cache. Each
// column's sum does not depend on it.
enum class PanelOrder { first_to_last, last_to_first };

// Step `step`'s order: every other step backward.
inline PanelOrder panel_order_of(Index step) {
  return step % 2 == 1 ? PanelOrder::last_to_first : PanelOrder::first_to_last;
}

// The i-th of `count` products (a step's gate blocks) in `order`.
inline Index in_order(Index i, Index count, PanelOrder order) {
  return order == PanelOrder::last_to_first ? count - 1 - i : i;
}

namespace detail {

// out[k * ldo + j] = rows[j * ldr + k] for j, k < kLanes: a square block transposed in
// registers. Packed element by element, the weight slices of a batch-1 forward took a
// visible share of the call.
template <typename Scalar>
EIGEN_ALWAYS_INLINE void transpose_square(const Scalar* rows, Index ldr, Scalar* out, Index ldo) {
  using namespace Eigen::internal;
  using Packet = typename PanelLayout<Scalar>::Packet;
  constexpr int N = PanelLayout<Scalar>::kLanes;
  PacketBlock<Packet, N> block;
  for (int j = 0; j < N; ++j) block.packet[j] = ploadu<Packet>(rows + j * ldr);
  ptranspose(block);
  for (int k = 0; k < N; ++k) pstore(out + k * ldo, block.packet[k]);
}

// The packet type with exactly kRows lanes, or void where there is none (AVX2's 6-row
// tiles, NEON's 4-lane packets).
template <typename Scalar>
struct TileDepthPacket {
  using Full = typename PanelLayout<Scalar>::Packet;
  using Half = typename Eigen::internal::unpacket_traits<Full>::half;
  static constexpr Index kRows = PanelLayout<Scalar>::kRows;
  using type =
      std::conditional_t<Eigen::internal::unpacket_traits<Full>::size == kRows, Full,
                         std::conditional_t<Eigen::internal::unpacket_traits<Half>::size == kRows, Half, void>>;
};

// out[i * R + r] = rows[r][k + i] where `keep` has lane r set, else 0, for r, i < R (R =
// the packet's lanes): R depths of a tile, transposed in registers.
template <typename Packet, typename Scalar>
EIGEN_ALWAYS_INLINE void transpose_depths(const Scalar* const* rows, Index k, const Packet& keep, Scalar* out) {
  using namespace Eigen::internal;
  constexpr int R = unpacket_traits<Packet>::size;
  PacketBlock<Packet, R> block;
  for (int r = 0; r < R; ++r) block.packet[r] = ploadu<Packet>(rows[r] + k);
  ptranspose(block);
  const Packet zero = pzero(keep);
  for (int i = 0; i < R; ++i) pstoreu(out + i * R, pselect(keep, block.packet[i], zero));
}

// out[r] = source[r] for r < valid, zero for valid <= r < R: one depth of a tile or a
// panel from a source whose values for that depth are contiguous. A full one is a
// fixed-size copy the compiler turns into a few vector moves.
template <Index R, typename Scalar>
EIGEN_ALWAYS_INLINE void copy_padded(const Scalar* source, Index valid, Scalar* out) {
  if (valid == R) {
    std::memcpy(out, source, R * sizeof(Scalar));
    return;
  }
  for (Index r = 0; r < R; ++r) out[r] = r < valid ? source[r] : Scalar(0);
}

}  // namespace detail

// B (depth, n) = W^T for the n rows of a row-major W starting at `rows` (stride ld): the
// operand of x W^T for one gate block of a thread's units.
template <typename Scalar>
void pack_rows_as_columns(const Scalar* rows, Index ld, Index n, Index depth, Scalar* packed) {
  constexpr Index W = PanelLayout<Scalar>::kWidth, N = PanelLayout<Scalar>::kLanes;
  for (Index panel = 0; panel < PanelLayout<Scalar>::panels(n); ++panel) {
    const Index first = panel * W, valid = std::min(W, n - first);
    const Scalar* source = rows + first * ld;
    Scalar* out = packed + panel * depth * W;
    // Full squares of kLanes columns by kLanes depths in registers, the ragged rest
    // element by element.
    const Index square_cols = valid / N * N, square_depth = depth / N * N;
    for (Index j = 0; j < square_cols; j += N) {
      for (Index k = 0; k < square_depth; k += N) {
        detail::transpose_square(source + j * ld + k, ld, out + k * W + j, W);
      }
      for (Index jj = j; jj < j + N; ++jj) {
        for (Index k = square_depth; k < depth; ++k) out[k * W + jj] = source[jj * ld + k];
      }
    }
    for (Index j = square_cols; j < valid; ++j) {
      for (Index k = 0; k < depth; ++k) out[k * W + j] = source[j * ld + k];
    }
    for (Index j = valid; j < W; ++j) {
      for (Index k = 0; k < depth; ++k) out[k * W + j] = Scalar(0);
    }
  }
}

// B (depth, n) with depth k from rows k0 + k of `b` (their first n values) into panels: the
// columns of a weight matrix, or x^T and h^T of the weight gradients.
template <typename Scalar>
void pack_rows_as_depth(RowView<Scalar> b, Index n, Index k0, Index depth, Scalar* packed) {
  constexpr Index W = PanelLayout<Scalar>::kWidth;
  for (Index k = 0; k < depth; ++k) {
    const Scalar* source = b.row(k0 + k);
    for (Index panel = 0; panel < PanelLayout<Scalar>::panels(n); ++panel) {
      const Index first = panel * W;
      detail::copy_padded<W>(source + first, std::min(W, n - first), packed + panel * depth * W + k * W);
    }
  }
}

// B (depth, n) = the n columns of a row-major W (depth rows) starting at `cols`.
template <typename Scalar>
void pack_columns(const Scalar* cols, Index ld, Index n, Index depth, Scalar* packed) {
  pack_rows_as_depth<Scalar>({cols, ld}, n, 0, depth, packed);
}

// Packs rows [r0, r0+rows) of `a`, values [k0, k0+depth), into tiles, padding rows with
// zeros. Where a packet has kRows lanes (AVX-512: half a packet of floats, a packet of
// doubles) a tile goes through registers kRows depths at a time, its rows read side by
// side (a short tile's padding lanes read its last row and are zeroed). Element by
// element, one row after the other, packing x was a large share of an inference with a
// wide input and a small hidden size (I=1024, H=64), most of it stalled on one load
// instruction.
template <typename Scalar>
void pack_tiles(RowView<Scalar> a, Index r0, Index rows, Index k0, Index depth, Scalar* packed) {
  constexpr Index R = PanelLayout<Scalar>::kRows;
  using L = PanelLayout<Scalar>;
  using TilePacket = typename detail::TileDepthPacket<Scalar>::type;
  for (Index tile = 0; tile < L::tiles(rows); ++tile) {
    const Index first = L::tile_first(rows, tile), valid = L::tile_height(rows, tile);
    Scalar* out = packed + tile * depth * R;
    Index k_done = 0;
    if constexpr (!std::is_void_v<TilePacket>) {
      using namespace Eigen::internal;
      const Scalar* tile_rows[R];
      for (Index r = 0; r < R; ++r) tile_rows[r] = a.row(r0 + first + std::min(r, valid - 1)) + k0;
      const TilePacket keep = pcmp_lt(plset<TilePacket>(Scalar(0)), pset1<TilePacket>(Scalar(valid)));
      k_done = depth / R * R;
      for (Index k = 0; k < k_done; k += R) detail::transpose_depths(tile_rows, k, keep, out + k * R);
    }
    for (Index r = 0; r < valid; ++r) {
      const Scalar* row = a.row(r0 + first + r) + k0;
      for (Index k = k_done; k < depth; ++k) out[k * R + r] = row[k];
    }
    for (Index r = valid; r < R; ++r) {
      for (Index k = k_done; k < depth; ++k) out[k * R + r] = Scalar(0);
    }
  }
}

// Packs A (rows, depth) with A(r, k) = a.row(k0 + k)[r0 + r] (the gate gradients da^T of
// the weight gradients) into tiles: depth by depth across all tiles, so each source row is
// read once, contiguously, rather than once per tile (measured alone, several times faster).
template <typename Scalar>
void pack_tiles_transposed(RowView<Scalar> a, Index r0, Index rows, Index k0, Index depth, Scalar* packed) {
  constexpr Index R = PanelLayout<Scalar>::kRows;
  const Index tiles = PanelLayout<Scalar>::tiles(rows);
  // Each depth reads a few hundred bytes of a source row far from the last one's, which the
  // hardware prefetcher does not follow: the row kAhead depths on is requested now.
  constexpr Index kAhead = 16, kLine = 64 / sizeof(Scalar);
  for (Index k = 0; k < depth; ++k) {
    const Scalar* source = a.row(k0 + k) + r0;
    if (k + kAhead < depth) {
      const Scalar* ahead = a.row(k0 + k + kAhead) + r0;
      for (Index r = 0; r < rows; r += kLine) __builtin_prefetch(ahead + r);
      __builtin_prefetch(ahead + rows - 1);
    }
    for (Index tile = 0; tile < tiles; ++tile) {
      // A tile's rows at one depth are contiguous in the source; copied one value at a
      // time this was a sixth of the weight-gradient products.
      detail::copy_padded<R>(source + PanelLayout<Scalar>::tile_first(rows, tile),
                             PanelLayout<Scalar>::tile_height(rows, tile), packed + tile * depth * R + k * R);
    }
  }
}

namespace detail {

// The accumulators of one tile, named rather than an array: GCC keeps named packets in
// registers but spilled an array of them to the stack on every iteration.
template <typename Packet>
struct TileAccumulators {
  Packet lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, lo4, hi4, lo5, hi5, lo6, hi6, lo7, hi7;
};

// The A operand of a tile: a(k, r) for its rows r < kRows, packed ([k][kRows]) ...
template <typename Scalar>
struct PackedTile {
  const Scalar* a;
  EIGEN_ALWAYS_INLINE Scalar operator()(Index k, int r) const { return a[k * PanelLayout<Scalar>::kRows + r]; }
};

// ... or read in place, row by row: a small row-major A (h_{t-1}, the step's da_t), which
// the kernel reads as fast as a packed one, so packing it every step is saved.
template <typename Scalar>
struct RowTile {
  const Scalar* rows[PanelLayout<Scalar>::kRows];
  EIGEN_ALWAYS_INLINE Scalar operator()(Index k, int r) const { return rows[r][k]; }
};

// Where the rows of a tile's result go: row r < kRows at rows[r] (the tile's columns
// start there). Rows of C need not be evenly spaced: one thread's share of the batch at
// each of a chunk's steps (OutputRows with a group).
template <typename Scalar>
struct TileOutput {
  Scalar* rows[PanelLayout<Scalar>::kRows];
};

// Row r of the tile += a(k, r) * (b_lo, b_hi) for the rows r < R; with P = 1 packet, only
// b_lo (a panel of at most kLanes columns).
template <int R, int P, typename Source, typename Packet>
EIGEN_ALWAYS_INLINE void tile_step(TileAccumulators<Packet>& acc, const Source& a, Index k, const Packet& b_lo,
                                   const Packet& b_hi) {
  using namespace Eigen::internal;
  Packet x = pset1<Packet>(a(k, 0));
  acc.lo0 = pmadd(x, b_lo, acc.lo0);
  if constexpr (P > 1) acc.hi0 = pmadd(x, b_hi, acc.hi0);
  if constexpr (R > 1) {
    x = pset1<Packet>(a(k, 1));
    acc.lo1 = pmadd(x, b_lo, acc.lo1);
    if constexpr (P > 1) acc.hi1 = pmadd(x, b_hi, acc.hi1);
  }
  if constexpr (R > 2) {
    x = pset1<Packet>(a(k, 2));
    acc.lo2 = pmadd(x, b_lo, acc.lo2);
    if constexpr (P > 1) acc.hi2 = pmadd(x, b_hi, acc.hi2);
  }
  if constexpr (R > 3) {
    x = pset1<Packet>(a(k, 3));
    acc.lo3 = pmadd(x, b_lo, acc.lo3);
    if constexpr (P > 1) acc.hi3 = pmadd(x, b_hi, acc.hi3);
  }
  if constexpr (R > 4) {
    x = pset1<Packet>(a(k, 4));
    acc.lo4 = pmadd(x, b_lo, acc.lo4);
    if constexpr (P > 1) acc.hi4 = pmadd(x, b_hi, acc.hi4);
  }
  if constexpr (R > 5) {
    x = pset1<Packet>(a(k, 5));
    acc.lo5 = pmadd(x, b_lo, acc.lo5);
    if constexpr (P > 1) acc.hi5 = pmadd(x, b_hi, acc.hi5);
  }
  if constexpr (R > 6) {
    x = pset1<Packet>(a(k, 6));
    acc.lo6 = pmadd(x, b_lo, acc.lo6);
    if constexpr (P > 1) acc.hi6 = pmadd(x, b_hi, acc.hi6);
  }
  if constexpr (R > 7) {
    x = pset1<Packet>(a(k, 7));
    acc.lo7 = pmadd(x, b_lo, acc.lo7);
    if constexpr (P > 1) acc.hi7 = pmadd(x, b_hi, acc.hi7);
  }
}

// Keeps a loaded packet in a register the compiler cannot see into. Without it GCC folds
// the panel's load into every FMA that reads it: a tile of R rows then loads each packet
// R times, and tiles of 1 to 5 rows (small batches) ran at about half the FMA peak, bound
// by loads, where the 6-row tile, loaded once, ran near it.
template <typename Packet>
EIGEN_ALWAYS_INLINE void in_register(Packet& packet) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+v"(packet));  // "v": any SIMD register, zmm16-31 included
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(packet));
#else
  (void)packet;
#endif
}

// Hides an index's value from the optimizer; no instruction.
EIGEN_ALWAYS_INLINE void opaque_index(Index& index) {
#if defined(__GNUC__)
  __asm__("" : "+r"(index));
#else
  (void)index;
#endif
}

// Writes (or adds) one row of a tile into up to kWidth columns of C.
template <typename Scalar, typename Packet>
EIGEN_ALWAYS_INLINE void tile_store(const Packet& lo, const Packet& hi, Scalar* row, Index cols, bool accumulate) {
  using namespace Eigen::internal;
  using L = PanelLayout<Scalar>;
  constexpr int N = L::kLanes;
  if (cols == L::kWidth) {
    if (accumulate) {
      pstoreu(row, padd(lo, ploadu<Packet>(row)));
      pstoreu(row + N, padd(hi, ploadu<Packet>(row + N)));
    } else {
      pstoreu(row, lo);
      pstoreu(row + N, hi);
    }
    return;
  }
  if (cols == N) {
    pstoreu(row, accumulate ? padd(lo, ploadu<Packet>(row)) : lo);
    return;
  }
  alignas(64) Scalar tile[L::kWidth];
  pstore(tile, lo);
  pstore(tile + N, hi);
  for (Index j = 0; j < cols; ++j) {
    row[j] = accumulate ? row[j] + tile[j] : tile[j];
    // Hides j from the compiler, which would otherwise make the loop a call to memcpy. A
    // call clobbers every SIMD register, so a caller that keeps accumulators in them
    // across a loop that may store here (interleaved_group's projection) saved and
    // reloaded them on every pass, taken or not.
    opaque_index(j);
  }
}

// One tile of A (R valid rows, a PackedTile or RowTile) times one panel, into R rows by
// `cols` of C. P = 1 multiplies only the panel's first packet: the last panel of a
// thread's units is often half full (H = 96 on 2 threads: 48 units, 1.5 panels), and
// its zero half took as long as a full one.
template <typename Scalar, int R, int P, typename Source>
void tile_kernel(const Source& a, Index depth, const Scalar* panel, const TileOutput<Scalar>& c, Index cols,
                 bool accumulate, LoneRow lone = LoneRow::split) {
  using namespace Eigen::internal;
  using L = PanelLayout<Scalar>;
  using Packet = typename L::Packet;
  constexpr int N = L::kLanes;
  constexpr Index W = L::kWidth;
  // C is the one operand that is not packed, and often cold (the forward's gate rows,
  // written by the input product long before): its lines are requested now and arrive
  // while the k loop runs, instead of stalling the stores at the end.
  for (int r = 0; r < R; ++r) {
    __builtin_prefetch(c.rows[r]);
    __builtin_prefetch(c.rows[r] + cols - 1);
  }
  const Packet zero = pset1<Packet>(Scalar(0));
  TileAccumulators<Packet> acc{zero, zero, zero, zero, zero, zero, zero, zero,
                               zero, zero, zero, zero, zero, zero, zero, zero};
  if constexpr (R == 1) {
    if (lone == LoneRow::split) {
      // A single row is a dot product per column, latency-bound with two chains: split k
      // by parity into four (the batch-1 streaming step lives here).
      Index k = 0;
      for (; k + 1 < depth; k += 2) {
        const Packet a0 = pset1<Packet>(a(k, 0)), a1 = pset1<Packet>(a(k + 1, 0));
        acc.lo0 = pmadd(a0, pload<Packet>(panel + k * W), acc.lo0);
        acc.lo1 = pmadd(a1, pload<Packet>(panel + (k + 1) * W), acc.lo1);
        if constexpr (P > 1) {
          acc.hi0 = pmadd(a0, pload<Packet>(panel + k * W + N), acc.hi0);
          acc.hi1 = pmadd(a1, pload<Packet>(panel + (k + 1) * W + N), acc.hi1);
        }
      }
      for (; k < depth; ++k) {
        const Packet a0 = pset1<Packet>(a(k, 0));
        acc.lo0 = pmadd(a0, pload<Packet>(panel + k * W), acc.lo0);
        if constexpr (P > 1) acc.hi0 = pmadd(a0, pload<Packet>(panel + k * W + N), acc.hi0);
      }
      tile_store(padd(acc.lo0, acc.lo1), padd(acc.hi0, acc.hi1), c.rows[0], cols, accumulate);
      return;
    }
  }
  for (Index k = 0; k < depth; ++k) {
    Packet b_lo = pload<Packet>(panel + k * W);
    Packet b_hi = P > 1 ? pload<Packet>(panel + k * W + N) : b_lo;
    in_register(b_lo);
    if constexpr (P > 1) in_register(b_hi);
    tile_step<R, P>(acc, a, k, b_lo, b_hi);
  }
  tile_store(acc.lo0, acc.hi0, c.rows[0], cols, accumulate);
  if constexpr (R > 1) tile_store(acc.lo1, acc.hi1, c.rows[1], cols, accumulate);
  if constexpr (R > 2) tile_store(acc.lo2, acc.hi2, c.rows[2], cols, accumulate);
  if constexpr (R > 3) tile_store(acc.lo3, acc.hi3, c.rows[3], cols, accumulate);
  if constexpr (R > 4) tile_store(acc.lo4, acc.hi4, c.rows[4], cols, accumulate);
  if constexpr (R > 5) tile_store(acc.lo5, acc.hi5, c.rows[5], cols, accumulate);
  if constexpr (R > 6) tile_store(acc.lo6, acc.hi6, c.rows[6], cols, accumulate);
  if constexpr (R > 7) tile_store(acc.lo7, acc.hi7, c.rows[7], cols, accumulate);
}

template <typename Scalar, int P, typename Source>
void tile_kernel_rows(Index rows, const Source& a, Index depth, const Scalar* panel, const TileOutput<Scalar>& c,
                      Index cols, bool accumulate, LoneRow lone) {
  switch (rows) {
    case 1:
      return tile_kernel<Scalar, 1, P>(a, depth, panel, c, cols, accumulate, lone);
    case 2:
      return tile_kernel<Scalar, 2, P>(a, depth, panel, c, cols, accumulate);
    case 3:
      return tile_kernel<Scalar, 3, P>(a, depth, panel, c, cols, accumulate);
    case 4:
      return tile_kernel<Scalar, 4, P>(a, depth, panel, c, cols, accumulate);
    case 5:
      return tile_kernel<Scalar, 5, P>(a, depth, panel, c, cols, accumulate);
    case 6:
      return tile_kernel<Scalar, 6, P>(a, depth, panel, c, cols, accumulate);
  }
  if constexpr (PanelLayout<Scalar>::kRows > 6) {
    if (rows == 7) return tile_kernel<Scalar, 7, P>(a, depth, panel, c, cols, accumulate);
    return tile_kernel<Scalar, 8, P>(a, depth, panel, c, cols, accumulate);
  }
}

template <typename Scalar, typename Source>
void tile_kernel_rows(Index rows, const Source& a, Index depth, const Scalar* panel, const TileOutput<Scalar>& c,
                      Index cols, bool accumulate, LoneRow lone) {
  if (cols <= PanelLayout<Scalar>::kLanes)
    return tile_kernel_rows<Scalar, 1>(rows, a, depth, panel, c, cols, accumulate, lone);
  tile_kernel_rows<Scalar, 2>(rows, a, depth, panel, c, cols, accumulate, lone);
}

// A tile of R <= 2 rows times two panels at once, the second `cols` wide: one or two rows
// against one panel keep only 2 or 4 accumulators, too few to cover the FMA's latency
// (two pipes of latency 4 or 5 want 8 to 10), and a batch of 2 ran its step at about
// half the FMA peak. Two rows get 8 here; a row alone 4, still short of them. Each
// column is still one chain summed in k order, as in tile_kernel: a row's bits do not
// depend on which kernel ran it (a batch's rows pass between tiles of different heights
// as sequences end).
template <typename Scalar, int R, typename Source>
void tile_kernel_pair(const Source& a, Index depth, const Scalar* first_panel, const Scalar* second_panel,
                      const TileOutput<Scalar>& c, Index cols, bool accumulate) {
  static_assert(R == 1 || R == 2, "four packets a row: 8 accumulators at most beside the operands");
  using namespace Eigen::internal;
  using L = PanelLayout<Scalar>;
  using Packet = typename L::Packet;
  constexpr int N = L::kLanes;
  constexpr Index W = L::kWidth;
  for (int r = 0; r < R; ++r) {
    __builtin_prefetch(c.rows[r]);
    __builtin_prefetch(c.rows[r] + W + cols - 1);
  }
  const Packet zero = pset1<Packet>(Scalar(0));
  // lo/hi 0 and 1: the first panel's rows 0 and 1; 2 and 3: the second panel's.
  TileAccumulators<Packet> acc{zero, zero, zero, zero, zero, zero, zero, zero,
                               zero, zero, zero, zero, zero, zero, zero, zero};
  for (Index k = 0; k < depth; ++k) {
    Packet b0 = pload<Packet>(first_panel + k * W), b1 = pload<Packet>(first_panel + k * W + N);
    Packet b2 = pload<Packet>(second_panel + k * W), b3 = pload<Packet>(second_panel + k * W + N);
    in_register(b0);
    in_register(b1);
    in_register(b2);
    in_register(b3);
    Packet x = pset1<Packet>(a(k, 0));
    acc.lo0 = pmadd(x, b0, acc.lo0);
    acc.hi0 = pmadd(x, b1, acc.hi0);
    acc.lo2 = pmadd(x, b2, acc.lo2);
    acc.hi2 = pmadd(x, b3, acc.hi2);
    if constexpr (R > 1) {
      x = pset1<Packet>(a(k, 1));
      acc.lo1 = pmadd(x, b0, acc.lo1);
      acc.hi1 = pmadd(x, b1, acc.hi1);
      acc.lo3 = pmadd(x, b2, acc.lo3);
      acc.hi3 = pmadd(x, b3, acc.hi3);
    }
  }
  tile_store(acc.lo0, acc.hi0, c.rows[0], W, accumulate);
  tile_store(acc.lo2, acc.hi2, c.rows[0] + W, cols, accumulate);
  if constexpr (R > 1) {
    tile_store(acc.lo1, acc.hi1, c.rows[1], W, accumulate);
    tile_store(acc.lo3, acc.hi3, c.rows[1] + W, cols, accumulate);
  }
}

}  // namespace detail

// Depth per pass of the kernel: one panel's block (kDepthBlock x kWidth: 16 kB) stays in L1
// while the tiles stream past it. Unblocked, a depth-1024 panel (the backward's
// da_t W_hh) is 64 kB and came from L2 for every tile, below the kernel's L1 speed.
constexpr Index kDepthBlock = 256;

namespace detail {

// C (rows, n) (+)= A (rows, depth) times packed B panels (depth, n), in depth blocks of
// `depth_block` (each adds its partial sums to C); a_tile(tile, first_row, height, k0) is
// the A operand of a tile's rows from depth k0 on; row r of C is c.row(c_first + r).
template <typename Scalar, typename TileOfA>
void multiply_tiles(const TileOfA& a_tile, Index rows, Index depth, const Scalar* b_panels, Index n,
                    OutputRows<Scalar> c, Index c_first, bool accumulate, LoneRow lone,
                    Index depth_block = kDepthBlock, PanelOrder order = PanelOrder::first_to_last) {
  using L = PanelLayout<Scalar>;
  // One or two rows (a batch of 2, or one row of a batch) take the panels two at a time;
  // a batch of one keeps tile_kernel's split chains.
  const bool pairs = rows == 2 || (rows == 1 && lone == LoneRow::as_in_tiles);
  const Index panels = L::panels(n);
  // The depth block [k0, k0 + kDepthBlock) of one panel (or two) against every tile of A;
  // returns the panels it took.
  const auto block = [&](Index panel, Index k0) -> Index {
    const Index kc = std::min(depth_block, depth - k0), j0 = panel * L::kWidth, cols = std::min(L::kWidth, n - j0);
    const Scalar* b = b_panels + panel * depth * L::kWidth + k0 * L::kWidth;
    if (pairs && panel + 1 < panels) {
      TileOutput<Scalar> out;
      for (Index r = 0; r < rows; ++r) out.rows[r] = c.row(c_first + r) + j0;
      const Index next_cols = std::min(L::kWidth, n - j0 - L::kWidth);
      const Scalar* next = b + depth * L::kWidth;
      const auto a = a_tile(0, 0, rows, k0);
      if (rows == 2) {
        tile_kernel_pair<Scalar, 2>(a, kc, b, next, out, next_cols, accumulate || k0 > 0);
      } else {
        tile_kernel_pair<Scalar, 1>(a, kc, b, next, out, next_cols, accumulate || k0 > 0);
      }
      return 2;
    }
    for (Index tile = 0; tile < L::tiles(rows); ++tile) {
      const Index r0 = L::tile_first(rows, tile), height = L::tile_height(rows, tile);
      TileOutput<Scalar> out;  // rows past `height` are never read
      for (Index r = 0; r < height; ++r) out.rows[r] = c.row(c_first + r0 + r) + j0;
      tile_kernel_rows(height, a_tile(tile, r0, height, k0), kc, b, out, cols, accumulate || k0 > 0, lone);
    }
    return 1;
  };
  if (L::tiles(rows) == 1) {
    // One tile reuses no panel block, so each panel is read whole before the next: one
    // sequential stream through the weights rather than a jump of a panel's length every
    // kDepthBlock rows. Each column still adds its depth blocks to C in the same order.
    // Groups of panels (pairs from the first, where block takes two) in `order`: either
    // way each panel runs in the same kernel, so its bits do not depend on the order.
    const Index stride = pairs ? 2 : 1, groups = (panels + stride - 1) / stride;
    for (Index g = 0; g < groups; ++g) {
      const Index panel = stride * in_order(g, groups, order);
      for (Index k0 = 0; k0 == 0 || k0 < depth; k0 += depth_block) block(panel, k0);
    }
    return;
  }
  // Depth 0 still runs one (empty) block: C is written, zeros unless accumulating.
  for (Index k0 = 0; k0 == 0 || k0 < depth; k0 += depth_block) {
    for (Index panel = 0; panel < panels;) panel += block(panel, k0);
  }
}

}  // namespace detail

// C (rows, n) (+)= packed A tiles (rows, depth) times packed B panels (depth, n), both
// packed for the whole depth; C's row r is c.row(c_first + r). `depth_block`: as
// multiply_tiles.
template <typename Scalar>
void multiply_packed(const Scalar* a_tiles, Index rows, Index depth, const Scalar* b_panels, Index n,
                     OutputRows<Scalar> c, Index c_first, bool accumulate, LoneRow lone = LoneRow::split,
                     Index depth_block = kDepthBlock, PanelOrder order = PanelOrder::first_to_last) {
  constexpr Index R = PanelLayout<Scalar>::kRows;
  const auto tile = [&](Index index, Index, Index, Index k0) {
    return detail::PackedTile<Scalar>{a_tiles + index * depth * R + k0 * R};
  };
  detail::multiply_tiles(tile, rows, depth, b_panels, n, c, c_first, accumulate, lone, depth_block, order);
}

// ... with C's rows ldc apart.
template <typename Scalar>
void multiply_packed(const Scalar* a_tiles, Index rows, Index depth, const Scalar* b_panels, Index n, Scalar* c,
                     Index ldc, bool accumulate, LoneRow lone = LoneRow::split,
                     PanelOrder order = PanelOrder::first_to_last) {
  multiply_packed<Scalar>(a_tiles, rows, depth, b_panels, n, OutputRows<Scalar>{c, ldc}, 0, accumulate, lone,
                          kDepthBlock, order);
}

// As multiply_packed, with A (rows, depth) read in place from the rows of `a`.
// `order`: B's panels last to first for a product of one tile of rows (PanelOrder).
template <typename Scalar>
void multiply_rows(RowView<Scalar> a, Index rows, Index depth, const Scalar* b_panels, Index n, Scalar* c,
                   Index ldc, bool accumulate, LoneRow lone = LoneRow::split,
                   PanelOrder order = PanelOrder::first_to_last) {
  const auto tile = [&](Index, Index first, Index height, Index k0) {
    detail::RowTile<Scalar> rows_of_tile{};
    for (Index r = 0; r < height; ++r) rows_of_tile.rows[r] = a.row(first + r) + k0;
    return rows_of_tile;
  };
  detail::multiply_tiles(tile, rows, depth, b_panels, n, OutputRows<Scalar>{c, ldc}, 0, accumulate, lone,
                         kDepthBlock, order);
}

// Rows of A up to which a product that runs once (a pass of one step: a streaming
// `step()`) reads W in place (multiply_unpacked) rather than packing it: packing a
// thread's rows of W took longer than the matrix-vector products that would read them.
constexpr Index kUnpackedRows = 2;

// C (rows, n) (+)= A (rows, depth) W^T for the n rows of a row-major W (row stride ldw),
// W read in place: one matrix-vector product (Eigen's) per row of A.
template <typename Scalar>
void multiply_unpacked(RowView<Scalar> a, Index rows, Index depth, const Scalar* w, Index ldw, Index n, Scalar* c,
                       Index ldc, bool accumulate) {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  const Eigen::Map<const Matrix, 0, Eigen::OuterStride<>> weights(w, n, depth, Eigen::OuterStride<>(ldw));
  for (Index r = 0; r < rows; ++r) {
    const Eigen::Map<const Vector> input(a.row(r), depth);
    Eigen::Map<Vector> out(c + r * ldc, n);
    if (accumulate) {
      out.noalias() += weights * input;
    } else {
      out.noalias() = weights * input;
    }
  }
}

// Reusable packing space for products; sized on first use, so a time loop that calls
// the same product every step allocates only in its first step.
template <typename Scalar>
struct ProductWorkspace {
  PackedBuffer<Scalar> a_tiles;
  PackedBuffer<Scalar> b_panels;
  Scalar* a(Index size) { return grow(a_tiles, size); }
  Scalar* b(Index size) { return grow(b_panels, size); }

 private:
  static Scalar* grow(PackedBuffer<Scalar>& buffer, Index size) {
    if (Index(buffer.size()) < size) buffer.resize(size);
    return buffer.data();
  }
};

// Rows per block of A: a block of tiles (kRowBlock x kDepthBlock) stays in L2 while one
// panel block of B stays in L1.
constexpr Index kRowBlock = 96;

// `rows` cut into count() blocks of at most `most` rows whose sizes differ by one at most.
struct EvenBlocks {
  Index rows, count;
  EvenBlocks(Index rows, Index most) : rows(rows), count((rows + most - 1) / most) {}
  Index longest() const { return count > 0 ? (rows + count - 1) / count : 0; }
  Index size(Index block) const { return rows / count + (block < rows % count ? 1 : 0); }
};

// packed_products cuts its rows into blocks of at most kProjectionRowBlock whose sizes
// differ by one row at most: every block streams all the panels of B from L2 again, and
// 100 rows (a batch-1 forward of 100 steps) as 96 + 4 ran that second pass for a tile of
// 4 rows, half as fast as a full one, and the forward took longer than as one block. (The
// weight gradients' blocks, of gate rows, stay at kRowBlock: 128 was slower there.)
constexpr Index kProjectionRowBlock = 128;

// For each g < count: C_g (rows, n) (+)= A (rows, depth) * B_g, where B_g (packed by the
// caller for the whole depth, pack_rows_as_columns / pack_columns) starts at
// b_panels + g * b_stride and C_g's row r at c.row(r) + g * c_stride. A row block of A is
// packed once for all the products that share it: the gate blocks of one projection.
template <typename Scalar>
void packed_products(RowView<Scalar> a, Index rows, Index depth, const Scalar* b_panels, Index b_stride, Index n,
                     OutputRows<Scalar> c, Index c_stride, Index count, bool accumulate,
                     ProductWorkspace<Scalar>& ws, LoneRow lone = LoneRow::split) {
  using L = PanelLayout<Scalar>;
  const EvenBlocks blocks(rows, kProjectionRowBlock);
  Scalar* tiles = ws.a(L::tiles(blocks.longest()) * L::kRows * depth);
  for (Index b = 0, r0 = 0; b < blocks.count; ++b) {
    const Index block = blocks.size(b);
    pack_tiles(a, r0, block, 0, depth, tiles);
    for (Index g = 0; g < count; ++g) {
      OutputRows<Scalar> c_g = c;
      c_g.data += g * c_stride;
      multiply_packed(tiles, block, depth, b_panels + g * b_stride, n, c_g, r0, accumulate, lone);
    }
    r0 += block;
  }
}

// One product of transposed_products: C (rows, n) (+)= A^T B, B (depth, n) read from rows
// of `b` (pack_rows_as_depth), C's rows `ldc` apart.
template <typename Scalar>
struct TransposedTarget {
  RowView<Scalar> b;
  Index n;
  Scalar* c;
  Index ldc;
};

// Each target's C (+)= A^T B, with A^T (rows, depth) read from columns [r0, r0+rows) of
// the rows of `a` (pack_tiles_transposed): sums of outer products over the rows of a
// sequence, the weight gradients after a time loop. Blocked over depth so a B block's
// panels stay in cache. Each block of A is packed once for all the targets: dW_ih =
// da^T x and dW_hh = da^T h_{t-1} share da^T, whose packing (a transposed read of the
// whole tape) was a fifth of each product when they were separate.
template <typename Scalar>
void transposed_products(RowView<Scalar> a, Index r0, Index rows, Index depth,
                         std::initializer_list<TransposedTarget<Scalar>> targets, bool accumulate,
                         ProductWorkspace<Scalar>& ws) {
  using L = PanelLayout<Scalar>;
  Index panels_size = 0;
  for (const auto& target : targets) panels_size += L::size(target.n, kDepthBlock);
  for (Index k0 = 0; k0 < depth; k0 += kDepthBlock) {
    const Index kc = std::min(kDepthBlock, depth - k0);
    Scalar* panels = ws.b(panels_size);
    Scalar* next = panels;
    for (const auto& target : targets) {
      pack_rows_as_depth(target.b, target.n, k0, kc, next);
      next += L::size(target.n, kc);
    }
    Scalar* tiles = ws.a(L::tiles(std::min(rows, kRowBlock)) * L::kRows * kDepthBlock);
    for (Index block0 = 0; block0 < rows; block0 += kRowBlock) {
      const Index block = std::min(kRowBlock, rows - block0);
      pack_tiles_transposed(a, r0 + block0, block, k0, kc, tiles);
      const Scalar* target_panels = panels;
      for (const auto& target : targets) {
        multiply_packed(tiles, block, kc, target_panels, target.n, target.c + block0 * target.ldc, target.ldc,
                        accumulate || k0 > 0);
        target_panels += L::size(target.n, kc);
      }
    }
  }
}

}  // namespace lstmcore
