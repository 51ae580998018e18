// A batch-1 forward's input projection, run inside the steps' recurrent products.
//
// Why: a batch-1 step's product reads all of W_hh for two multiply-adds per 128 bytes, so
// it runs at the cache's read rate with the FMA units mostly idle, while the projection
// (x_t W_ih^T for every t) is bound by the FMAs. Run before the steps, the two add up;
// mixed into one loop, the projection's multiply-adds use the units the product leaves
// idle (benchmarks/step_probes.py measures both ways on its CPU).
//
// How: the steps go in chunks of kInterleavedSteps. The first chunk's projection is one
// product before the first step, as without interleaving. While the steps of chunk c run,
// the projection of chunk c + 1 is computed: an 8-row tile (its steps' x_t, packed once)
// against each of this thread's panels of W_ih, the panels spread over the chunk's steps,
// and each panel's depths spread evenly through the loop of one group of that step's
// recurrent panels. Two chunks of gate rows are kept, the one the steps read and the one
// being projected.
//
// Every value is the one the unmixed products compute: each recurrent column sums its
// depths in the batch-1 order (by parity, in blocks of kDepthBlock, added to the row, or
// written over it for a gate kept apart, as a GRU's m), and each projected value in the
// order of a tile of several rows (one chain a column, in depth blocks of kDepthBlock),
// which is how the chunked projection sums every row of a chunk of two rows or more; a
// last step alone in its chunk there is projected as the chunked projection sums it.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/time_loop.hpp"

namespace lstmcore {

// Steps per chunk: the projection tile's rows.
constexpr Index kInterleavedSteps = 8;
// A chunk of the chunked projection starts a chunk here too (InterleavedProjection::lone_last).
static_assert(kChunkRows % kInterleavedSteps == 0);

// The most bytes (MiB) of W_ih and W_hh together with which a pass interleaves, on one
// thread and on more. Interleaved, all of W_ih is read again every kInterleavedSteps steps (the
// chunked projection reads it once in kChunkRows rows), and past the last level of cache
// those reads push W_hh out of it: every step then streams W_hh from memory. On a Zen 4
// with a 32 MiB L3 the interleaved forward ran faster up to 16 MiB and slower from 18 MiB
// on one thread, and on two faster at 10 MiB and slower from 12.5 MiB (docs/inference.md).
constexpr std::size_t kInterleavedWeightBytesOneThread = std::size_t{16} << 20;
constexpr std::size_t kInterleavedWeightBytesThreads = std::size_t{11} << 20;

// Whether a forward pass of `gates` gate blocks on `threads` threads interleaves its
// projection: batch 1 with every step alive (no lengths: a step with no row alive runs no
// product, so its share of the projection would be missing), no tape (inference), no
// recurrent mask, more than one chunk of steps, weights within the bound above, and tiles
// of kInterleavedSteps rows (the tile's 16 accumulators beside the product's 4 need 32
// SIMD registers: AVX-512, NEON).
template <typename Scalar>
bool interleaves_projection(const SequenceShape& s, Index gates, int threads, bool taped, bool masked) {
  if (PanelLayout<Scalar>::kRows != kInterleavedSteps || s.batch != 1 || s.batch_sizes || taped || masked ||
      s.steps <= kInterleavedSteps || s.input <= 0 || s.hidden <= 0) {
    return false;
  }
  const double weight_bytes = static_cast<double>(s.input + s.hidden) * gates * s.hidden * sizeof(Scalar);
  const auto bound = threads > 1 ? kInterleavedWeightBytesThreads : kInterleavedWeightBytesOneThread;
  return weight_bytes <= static_cast<double>(bound);
}

// The gate rows (width values each) of two chunks of steps: step `step`'s row, in the
// chunk slot of its parity. Shared by the pass's threads, each writing its own columns.
template <typename Scalar>
class InterleavedRows {
 public:
  InterleavedRows(Index width, bool used) : width_(width), rows_(used ? 2 * kInterleavedSteps * width : 0) {}
  Index width() const { return width_; }
  Scalar* row(Index step) const {
    const Index slot = (step / kInterleavedSteps) % 2;
    return rows_.data() + (slot * kInterleavedSteps + step % kInterleavedSteps) * width_;
  }

 private:
  Index width_;
  // Written through the const accessor by every thread, each in its own columns.
  mutable PassBuffer<Scalar> rows_;
};

namespace detail {

// One panel of the projection tile: its W_ih panel, where its rows go, its columns.
template <typename Scalar>
struct ProjectionPanel {
  const Scalar* weights;
  TileOutput<Scalar> out;
  Index rows;
  Index cols;
};

// One panel of the recurrent product: its W_hh panel, where its columns go, and whether
// they are added there (else written: its first depth block's sums).
template <typename Scalar>
struct RecurrentPanel {
  const Scalar* weights;
  Scalar* out;
  Index cols;
  bool accumulate;
};

// h (depth) times `count` recurrent panels, panel(i) giving the i-th, each column summed
// into its output as tile_kernel's batch-1 split sums it; with one projection depth of the tile
// x (packed [k][kRows], `input` deep) against `projection` done whenever the product's
// progress (in pairs of depths) passes the next share of `input`, so that the tile's
// `input` depths spread evenly over the group. Without a projection (input 0), only the
// product.
template <typename Scalar, typename PanelAt>
void interleaved_group(const Scalar* h, Index depth, Index count, const PanelAt& panel, const Scalar* x,
                       Index input, const ProjectionPanel<Scalar>& projection) {
  using namespace Eigen::internal;
  using L = PanelLayout<Scalar>;
  using Packet = typename L::Packet;
  constexpr int N = L::kLanes;
  constexpr Index W = L::kWidth;
  const Packet zero = pset1<Packet>(Scalar(0));
  TileAccumulators<Packet> tile{zero, zero, zero, zero, zero, zero, zero, zero,
                                zero, zero, zero, zero, zero, zero, zero, zero};
  // The group's progress in pairs of depths (a lone last depth of a block counts as one),
  // against which the projection's depths are spread: Bresenham's steps.
  Index units_per_panel = 0;
  for (Index k0 = 0; k0 < depth; k0 += kDepthBlock) units_per_panel += (std::min(kDepthBlock, depth - k0) + 1) / 2;
  const Index units = std::max<Index>(units_per_panel * count, 1);
  Index owed = 0, next = 0;
  const PackedTile<Scalar> a{x};
  const auto project = [&](Index pairs) __attribute__((always_inline)) {
    owed += pairs * input;
    while (owed >= units) {
      owed -= units;
      const Packet b_lo = pload<Packet>(projection.weights + next * W),
                   b_hi = pload<Packet>(projection.weights + next * W + N);
      tile_step<L::kRows, 2>(tile, a, next, b_lo, b_hi);
      ++next;
      if (next % kDepthBlock == 0 || next == input) {
        // A depth block ends: its sums go to the rows (added after the first block), as
        // multiply_tiles adds a tile's blocks; row by row by name, since an array view of
        // the accumulators would keep them in memory.
        const bool accumulate = next > kDepthBlock;
        const auto store = [&](Index r, const Packet& lo, const Packet& hi) __attribute__((always_inline)) {
          if (r < projection.rows) tile_store(lo, hi, projection.out.rows[r], projection.cols, accumulate);
        };
        store(0, tile.lo0, tile.hi0);
        store(1, tile.lo1, tile.hi1);
        store(2, tile.lo2, tile.hi2);
        store(3, tile.lo3, tile.hi3);
        store(4, tile.lo4, tile.hi4);
        store(5, tile.lo5, tile.hi5);
        store(6, tile.lo6, tile.hi6);
        store(7, tile.lo7, tile.hi7);
        tile = {zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero};
      }
    }
  };
  for (Index i = 0; i < count; ++i) {
    const RecurrentPanel<Scalar> p = panel(i);
    __builtin_prefetch(p.out);
    for (Index k0 = 0; k0 == 0 || k0 < depth; k0 += kDepthBlock) {
      const Index kc = std::min(kDepthBlock, depth - k0);
      const Scalar* b = p.weights + k0 * W;
      const Scalar* hk = h + k0;
      Packet lo0 = zero, lo1 = zero, hi0 = zero, hi1 = zero;
      const auto depth_pair = [&](Index k) __attribute__((always_inline)) {
        const Packet a0 = pset1<Packet>(hk[k]), a1 = pset1<Packet>(hk[k + 1]);
        lo0 = pmadd(a0, pload<Packet>(b + k * W), lo0);
        lo1 = pmadd(a1, pload<Packet>(b + (k + 1) * W), lo1);
        hi0 = pmadd(a0, pload<Packet>(b + k * W + N), hi0);
        hi1 = pmadd(a1, pload<Packet>(b + (k + 1) * W + N), hi1);
      };
      Index k = 0;
      // The projection's turn is checked every four pairs: where the compiler keeps its
      // counter in memory, that chain then paces a quarter of the loads.
      for (; k + 7 < kc; k += 8) {
        depth_pair(k);
        depth_pair(k + 2);
        depth_pair(k + 4);
        depth_pair(k + 6);
        if (input > 0) project(4);
      }
      for (; k + 1 < kc; k += 2) {
        depth_pair(k);
        if (input > 0) project(1);
      }
      for (; k < kc; ++k) {
        const Packet a0 = pset1<Packet>(hk[k]);
        lo0 = pmadd(a0, pload<Packet>(b + k * W), lo0);
        hi0 = pmadd(a0, pload<Packet>(b + k * W + N), hi0);
        if (input > 0) project(1);
      }
      tile_store(padd(lo0, lo1), padd(hi0, hi1), p.out, p.cols, p.accumulate || k0 > 0);
    }
  }
}

}  // namespace detail

// Which gate's recurrent product a step's row keeps apart: every gate's is added to the
// gate's projection (an LSTM), or one gate's is written to the block after the K gate
// blocks instead (a GRU's n, whose recurrent part m the cell scales by r).
struct RecurrentApart {
  Index gate = -1;  // -1: none
};

// One thread's part of an interleaving forward: its `units` (n of each of K gate blocks
// of H), its panels of W_ih and W_hh, and its packed inputs of the chunk being projected.
// `used` false: a pass that does not interleave, for which it holds nothing.
template <typename Scalar>
class InterleavedProjection {
 public:
  using Layout = PanelLayout<Scalar>;

  InterleavedProjection(const SequenceShape& s, SequenceView<const Scalar> x, const InterleavedRows<Scalar>& rows,
                        Index gates, Range units, const GatePanels<Scalar>& panels, bool used,
                        RecurrentApart apart = {})
      : s_(s),
        x_(x),
        rows_(rows),
        gates_(gates),
        apart_(apart),
        units_(units),
        weights_(panels),
        panels_(Layout::panels(units.size())),
        tile_(used ? static_cast<std::size_t>(s.input * kInterleavedSteps) : 0) {}

  // The first chunk's projection: one product, before the first step.
  void project_first_chunk(ProductWorkspace<Scalar>& workspace) const {
    const Index steps = std::min(kInterleavedSteps, s_.steps);
    packed_products<Scalar>(inputs_from(0), steps, s_.input, weights_.ih(), weights_.ih_size(), units_.size(),
                            OutputRows<Scalar>{rows_.row(0) + units_.begin, rows_.width()}, s_.hidden, gates_,
                            false, workspace, LoneRow::as_in_tiles);
  }

  // Step `step`'s recurrent product h_{t-1} W_hh^T for this thread's units, into its row
  // (added to the gates' projection, but the gate kept apart), with this step's share of
  // the next chunk's projection mixed in.
  void step(Index step, const Scalar* h, ProductWorkspace<Scalar>& workspace) {
    const Index chunk = step / kInterleavedSteps, sub = step % kInterleavedSteps;
    const Index next_first = (chunk + 1) * kInterleavedSteps;
    const Index next_steps =
        lone_last(next_first) ? 0 : std::clamp<Index>(s_.steps - next_first, 0, kInterleavedSteps);
    if (lone_last(step)) {
      packed_products<Scalar>(inputs_from(step), 1, s_.input, weights_.ih(), weights_.ih_size(), units_.size(),
                              OutputRows<Scalar>{rows_.row(step) + units_.begin, rows_.width()}, s_.hidden, gates_,
                              false, workspace, LoneRow::split);
    }
    // x_t of the next chunk's steps, packed as a tile ([k][kRows], zero rows after its last).
    if (next_steps > 0 && sub == 0) pack_tiles(inputs_from(next_first), 0, next_steps, 0, s_.input, tile_.data());
    const Index total = gates_ * panels_;  // recurrent panels, and projection panels
    // This step's projection panels [first, last) of the next chunk's: the chunk's steps
    // share them evenly.
    const Index first = next_steps > 0 ? sub * total / kInterleavedSteps : 0;
    const Index last = next_steps > 0 ? (sub + 1) * total / kInterleavedSteps : 0;
    const Index groups = last - first;
    Scalar* row = rows_.row(step) + units_.begin;
    // Every other step takes the recurrent panels last to first (PanelOrder). The
    // projection's depths are paced by the recurrent depths done, the same in every
    // panel, so which panels a projection panel runs beside changes none of its sums.
    const PanelOrder order = panel_order_of(step);
    // Inlined, as every function the mixed loop reaches: a call would spill the tile.
    const auto recurrent = [&](Index i) __attribute__((always_inline)) {
      i = in_order(i, total, order);
      const Index gate = i / panels_, panel = i % panels_;
      const bool apart = gate == apart_.gate;
      return detail::RecurrentPanel<Scalar>{weights_.hh(gate) + panel * s_.hidden * Layout::kWidth,
                                            row + (apart ? gates_ : gate) * s_.hidden + panel * Layout::kWidth,
                                            cols(panel), !apart};
    };
    if (groups == 0) {
      detail::interleaved_group<Scalar>(h, s_.hidden, total, recurrent, nullptr, 0, {});
      return;
    }
    // The recurrent panels in `groups` runs as even as they go, each mixed with one
    // projection panel.
    for (Index g = 0; g < groups; ++g) {
      const Index begin = g * total / groups, end = (g + 1) * total / groups;
      const Index q = first + g, gate = q / panels_, panel = q % panels_;
      detail::ProjectionPanel<Scalar> projection{
          weights_.ih() + gate * weights_.ih_size() + panel * s_.input * Layout::kWidth,
          {},
          next_steps,
          cols(panel)};
      for (Index r = 0; r < next_steps; ++r) {
        projection.out.rows[r] =
            rows_.row(next_first + r) + units_.begin + gate * s_.hidden + panel * Layout::kWidth;
      }
      const auto run = [&](Index i) __attribute__((always_inline)) { return recurrent(begin + i); };
      detail::interleaved_group<Scalar>(h, s_.hidden, end - begin, run, tile_.data(), s_.input, projection);
    }
  }

 private:
  Index cols(Index panel) const { return std::min(Layout::kWidth, units_.size() - panel * Layout::kWidth); }

  // Whether `step` is the last and alone in its chunk of the chunked projection (T = 1 +
  // a multiple of kChunkRows at batch 1): that projection sums a lone row by the batch-1
  // split, not as a tile's row, so this one is projected the same way, before its step.
  bool lone_last(Index step) const { return step == s_.steps - 1 && step % kChunkRows == 0; }

  // x_t of the steps from `first` on as rows, in step order (time order reversed when the
  // pass is).
  RowView<Scalar> inputs_from(Index first) const {
    return {x_.at(s_.time_at(first), 0), s_.reverse ? -x_.time_stride : x_.time_stride};
  }

  const SequenceShape& s_;
  SequenceView<const Scalar> x_;
  const InterleavedRows<Scalar>& rows_;
  Index gates_;
  RecurrentApart apart_;
  Range units_;
  const GatePanels<Scalar>& weights_;
  Index panels_;
  PackedBuffer<Scalar> tile_;
};

}  // namespace lstmcore
