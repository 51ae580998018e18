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
#include "lstmcore/step_barrier.hpp"

namespace lstmcore {

// Threads a pass may use; 0 means OpenMP's default (OMP_NUM_THREADS or the cores).
int max_threads();
void set_max_threads(int threads);
// Whether the caller set a thread count (set_max_threads(n > 0)): passes then use it as
// planned, and the load sensor (load_sensor.hpp) only adapts the default.
bool threads_set_by_caller();

// Whether passes should avoid barriers now: the default thread count, on busy cores.
bool adapt_to_busy_cores();

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

// Threads worth using for a pass whose per-step recurrent product costs `step_flops`,
// at least `min_flops_per_thread` a thread and 16 hidden units a thread.
inline int plan_threads(double step_flops, Index hidden, double min_flops_per_thread) {
  constexpr Index kMinUnitsPerThread = 16;
  int threads = max_threads();
  threads = std::min<int>(threads, static_cast<int>(step_flops / min_flops_per_thread));
  threads = std::min<int>(threads, static_cast<int>(hidden / kMinUnitsPerThread));
  return std::max(threads, 1);
}

// The least flops a thread's share of a step's recurrent product needs for a second
// thread: below about 100k flops a step, the barrier costs more than the second thread
// gains. Re-checked with the core's own barrier (step_barrier.hpp): just below that
// (H=64 and 96 at batch 1, H=32 at B=8) two threads ran slower or faster than one by the
// machine's phase, so it stays.
constexpr double kMinFlopsPerThreadStep = 1.0e5;

// Threads worth using for a pass whose per-step recurrent product is
// (batch, hidden) x (hidden, gates*hidden).
inline int plan_threads(Index batch, Index hidden, Index gates) {
  return plan_threads(2.0 * batch * hidden * gates * hidden, hidden, kMinFlopsPerThreadStep);
}

// The split of a pass whose per-step recurrent product is (batch, hidden) x
// (hidden, gates*hidden), with an input of `input` features, in `scalar_bytes`-byte values.
//
// Over the batch when every thread gets a tile of rows or more (8) and the weights each
// thread then keeps packed, all of W_ih and W_hh, stay near its core: up to 0.6 MB in a
// forward (I=H=128 in float32; the batch split was faster there, but slower from
// I=H=176, where the unit split keeps each thread's half in L2 and its barriers cost
// little against the products); up to 5 MB in a backward (I=H=384), whose unit split
// waits for the other thread's gate gradients every step. Interleaved against the unit
// split, the training step of the sizes below those limits ran level or faster, and
// faster still in the phases in which a shared machine's cores talk slowly (an OpenMP
// barrier several times its usual cost), since the batch split exchanges nothing inside
// its time loop. Past those sizes the whole weights stream from L3 every step, and with
// each half of the batch run as its own one-thread pass, larger sizes (H=512, 1024) and
// fewer than a tile of rows a thread (B=8) ran slower than the unit split. The projected
// LSTM keeps the unit split (projected_lstm_sequence.hpp says why).
enum class Pass { forward, backward };

struct PassPlan {
  int threads = 1;
  bool by_batch = false;
  // The rows of a step one thread works on: its share of the batch, or all of it.
  Index rows_per_thread(Index batch) const { return by_batch ? (batch + threads - 1) / threads : batch; }
};

// Rows a thread needs for the batch split: one tile.
constexpr Index kMinBatchRowsPerThread = 8;

// While the cores are busy, the least work (flops of the products) for which a pass is
// still split over the batch rather than run on one thread.
constexpr double kBusyMinFlopsToSplit = 3e9;

inline PassPlan plan_pass(Index batch, Index input, Index hidden, Index gates, Index scalar_bytes, Pass pass) {
  const double max_weight_bytes = pass == Pass::forward ? 0.6e6 : 5e6;
  const int threads = plan_threads(batch, hidden, gates);
  const double weight_bytes = double(gates) * hidden * (input + hidden) * scalar_bytes;
  const bool by_batch =
      threads > 1 && batch >= kMinBatchRowsPerThread * threads && weight_bytes <= max_weight_bytes;
  return {threads, by_batch};
}

// Inside a pass's team (team.hpp) of `team` threads, every one of which calls this: runs `add`
// on each thread in turn, thread 0 first. Per-thread sums that several threads add into
// one gradient then add up in the same order every call, so a pass split over the batch
// repeats its results bit for bit.
template <typename Add>
void in_thread_order(int thread, int team, StepBarrier& barrier, Add&& add) {
  for (int turn = 0; turn < team; ++turn) {
    if (turn == thread) add();
    barrier.wait(team);
  }
}

constexpr Index kUnitAlign = 16;

}  // namespace lstmcore
