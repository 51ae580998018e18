// How a sequence is split over OpenMP threads.
//
// One parallel region covers a whole pass. Each thread owns a contiguous slice of
// hidden units: in every step it computes the recurrent product and the gate update
// for those units only, so its rows of W_hh stay in its own cache, and one barrier
// per step publishes the new hidden state to the others.
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

constexpr Index kUnitAlign = 16;

}  // namespace lstmcore
