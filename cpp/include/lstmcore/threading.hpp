// How a sequence is split over OpenMP threads.
//
// One parallel region covers a whole pass, split in one of two ways (PassPlan):
// - over hidden units: each thread computes the recurrent product and the gate update
//   of its own units for every row, so only its rows of W_hh sit in its cache, and one
//   barrier per step publishes the new hidden state to the others;
// - over the batch: each thread runs its own rows' sequences with all of W_hh, so no
//   step waits for another thread or reads what another core wrote. Only the weight
//   gradients after the backward loop are split over units again.
#pragma once

#include <algorithm>
#include <atomic>

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

// Threads a pass may use; 0 means OpenMP's default (OMP_NUM_THREADS or the cores).
int max_threads();
void set_max_threads(int threads);

struct Range {
  Index begin = 0;
  Index end = 0;
  Index size() const { return end - begin; }
};

// Slice `thread` of [0, total) split in `threads` parts whose bounds are multiples
// of `align` (so SIMD lanes are not split between threads), the last part ragged.
inline Range split_range(Index total, int thread, int threads, Index align) {
  const Index blocks = (total + align - 1) / align;
  const Index begin = std::min(total, (blocks * thread / threads) * align);
  const Index end = std::min(total, (blocks * (thread + 1) / threads) * align);
  return {begin, end};
}

// Threads worth using for a pass whose per-step recurrent product is
// (batch, hidden) x (hidden, gates*hidden): below about 100k flops a step, the
// barrier costs more than the second thread gains.
inline int plan_threads(Index batch, Index hidden, Index gates) {
  constexpr double kMinFlopsPerThreadStep = 1.0e5;
  constexpr Index kMinUnitsPerThread = 16;
  const double flops = 2.0 * batch * hidden * gates * hidden;
  int threads = max_threads();
  threads = std::min<int>(threads, static_cast<int>(flops / kMinFlopsPerThreadStep));
  threads = std::min<int>(threads, static_cast<int>(hidden / kMinUnitsPerThread));
  return std::max(threads, 1);
}

// The split of a pass whose per-step recurrent product is (batch, hidden) x
// (hidden, gates*hidden) in `scalar_bytes`-byte values.
//
// Over the batch when every thread gets a tile of rows or more (8) and a whole W_hh stays
// near the core (up to 2.5 MB: I=H=384 in float32). Measured against the unit split on 2
// cores (AVX-512), training step: H=64 B=64 1.11x, H=128 B=32 1.02x, H=256 B=64 1.08x,
// H=384 B=32 1.04x, H=512 B=20 0.95x, H=1024 0.64-0.85x (each core then streams the
// whole W_hh from memory every step); B=8 0.86x. In the phases in which this machine's
// cores talk to each other at half speed (a barrier 400-500 ns instead of 200), the
// batch split ran 1.13-1.62x faster at H <= 512, since only the unit split exchanges
// h_t every step.
struct PassPlan {
  int threads = 1;
  bool by_batch = false;
};

inline PassPlan plan_pass(Index batch, Index hidden, Index gates, Index scalar_bytes) {
  constexpr Index kMinRowsPerThread = 8;
  constexpr double kMaxSharedWeightBytes = 2.5e6;
  const int threads = plan_threads(batch, hidden, gates);
  const double weight_bytes = double(gates) * hidden * hidden * scalar_bytes;
  const bool by_batch = threads > 1 && batch >= kMinRowsPerThread * threads && weight_bytes <= kMaxSharedWeightBytes;
  return {threads, by_batch};
}

constexpr Index kUnitAlign = 16;

}  // namespace lstmcore
