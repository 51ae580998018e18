// The barrier between the steps of a pass split over hidden units.
//
// Why not `#pragma omp barrier`: for two threads libgomp's took several times as long as
// this one, and it costs even in a team of one (a pass too small for two threads), where
// this returns at once. A batch-1 step is a few microseconds, so libgomp's barrier was a
// sizeable share of it. Interleaved against the OpenMP barrier, batch-1 inference ran
// faster with this one on one and two threads; small-batch training level or faster,
// large batches level.
//
// A thread that waits longer than a step's imbalance (a partner without a core: more
// threads than free cores, other processes on them) stops spinning and sleeps in
// std::atomic::wait (a futex on Linux) until the last arrival wakes it, so it gives its
// core to the thread it waits for. The spin is bounded by time, not by a count of pause
// instructions, whose length differs tenfold between CPUs.
//
// A thread that fails (an allocation, anything that throws) cancels the barrier: every
// thread waiting at it, or arriving later, throws PassCancelled instead of waiting for a
// partner that will never come (team.hpp turns this into one exception after the region).
#pragma once

#include <atomic>
#include <chrono>
#include <exception>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lstmcore {

// Thrown at a barrier of a pass that another thread of its team has cancelled.
struct PassCancelled {};

class StepBarrier {
 public:
  // Every one of the `team` threads of the parallel region calls this at the same point;
  // each returns once all have arrived, and what any of them wrote before is visible to
  // all after (the arrivals release, the wait acquires).
  void wait(int team) {
    if (team <= 1) return;
    // The generation before the check of failed_: a cancel that this check misses bumps
    // the generation after it, so the wait below sees it.
    const unsigned generation = generation_.load(std::memory_order_acquire);
    if (failed_.load(std::memory_order_acquire)) throw PassCancelled{};
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == team - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      // seq_cst, not release: notify_all reads libstdc++'s count of sleepers next, and a
      // store that release alone orders could still be in flight when a sleeper checks it.
      generation_.store(generation + 1);
      generation_.notify_all();
      return;
    }
    using Clock = std::chrono::steady_clock;
    const Clock::time_point give_up = Clock::now() + kSpin;
    for (int spins = 1;; ++spins) {
      if (generation_.load(std::memory_order_acquire) != generation) return opened();
      relax();
      if (spins % kSpinsPerClockRead == 0 && Clock::now() > give_up) break;
    }
    const Clock::time_point asleep = Clock::now();
    generation_.wait(generation, std::memory_order_acquire);
    const long long slept = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - asleep).count();
    long long longest = longest_sleep_.load(std::memory_order_relaxed);
    while (slept > longest && !longest_sleep_.compare_exchange_weak(longest, slept, std::memory_order_relaxed)) {
    }
    opened();
  }

  // The longest that any thread slept here (load_sensor.hpp): read after the region.
  std::chrono::nanoseconds longest_sleep() const { return std::chrono::nanoseconds(longest_sleep_.load()); }

  // Called by a thread that cannot go on: records the first failure, then wakes every
  // waiter, which throws PassCancelled. Safe to call from several threads at once.
  void cancel(std::exception_ptr failure) {
    if (!failed_.exchange(true)) failure_ = failure;
    generation_.fetch_add(1);
    generation_.notify_all();
  }

  // On the thread that started the pass, after the region: the failure, if any.
  void rethrow_failure() const {
    if (failed_.load(std::memory_order_acquire) && failure_) std::rethrow_exception(failure_);
  }

 private:
  // Longer than a step's imbalance between threads that have cores of their own (a batch-1
  // step is a few microseconds, a large batch's split evenly), short enough that a
  // thread without a core is not kept waiting long by one that spins on its core.
  static constexpr std::chrono::microseconds kSpin{10};
  static constexpr int kSpinsPerClockRead = 32;

  // The generation moved on: either every thread arrived, or the pass was cancelled.
  void opened() const {
    if (failed_.load(std::memory_order_acquire)) throw PassCancelled{};
  }

  static void relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("isb");
#endif
  }

  // On separate lines: the arrivals increment one, the waiters poll the other.
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> generation_{0};
  std::atomic<bool> failed_{false};
  std::atomic<long long> longest_sleep_{0};
  std::exception_ptr failure_;
};

}  // namespace lstmcore
