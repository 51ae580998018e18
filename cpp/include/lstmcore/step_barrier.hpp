// The barrier between the steps of a pass split over hidden units.
//
// Why not `#pragma omp barrier`: libgomp's took 330-600 ns for two threads on the 2-core
// machines this was measured on, a spin on one shared counter 50 ns; and 150 ns in a team
// of one (a pass too small for two threads), where this returns at once. A batch-1 step
// at H=256 is 3-4 us, so its barrier was a tenth of the step. Interleaved against the
// OpenMP barrier, batch-1 inference (T=100) ran 1.07x faster at H=128 and 1.025-1.05x at
// H=256 on two threads, 1.17-1.2x at H=64 on one; B=8 and B=64 level.
//
// A thread that waits long (a partner descheduled: more threads than free cores, other
// processes on them) stops spinning and sleeps in std::atomic::wait (a futex on Linux)
// until the last arrival wakes it, so it gives its core to the thread it waits for.
#pragma once

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lstmcore {

class StepBarrier {
 public:
  // Every one of the `team` threads of the parallel region calls this at the same point;
  // each returns once all have arrived, and what any of them wrote before is visible to
  // all after (the arrivals release, the wait acquires).
  void wait(int team) {
    if (team <= 1) return;
    const unsigned generation = generation_.load(std::memory_order_relaxed);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == team - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(generation + 1, std::memory_order_release);
      generation_.notify_all();
      return;
    }
    for (int spins = 0; spins < kSpinsBeforeSleep; ++spins) {
      if (generation_.load(std::memory_order_acquire) != generation) return;
      relax();
    }
    generation_.wait(generation, std::memory_order_acquire);
  }

 private:
  // About 45 us of pause instructions (22 ns each on this Zen 5): far longer than the
  // imbalance of a step between threads that have cores of their own.
  static constexpr int kSpinsBeforeSleep = 2000;

  static void relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  // On separate lines: the arrivals write one, the waiters poll the other.
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> generation_{0};
};

}  // namespace lstmcore
