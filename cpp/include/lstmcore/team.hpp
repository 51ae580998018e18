// A pass's team of threads: one OpenMP region that runs the same body on every thread.
//
// Every kernel starts its parallel work here, so two things hold for all of them:
// - A failure on any thread (std::bad_alloc from a buffer the thread allocates, or any
//   other exception) never unwinds through OpenMP, which would terminate the process. The
//   thread cancels the pass's barrier, its partners leave at their next barrier, and the
//   first failure is rethrown on the calling thread after the region.
// - In a child made by fork, the thread that forked still holds the parent's OpenMP
//   thread pool, whose threads do not exist in the child: a region it starts waits for
//   them forever. Its passes run on a thread of the core's (fork_safety.cpp), which
//   starts a pool of its own, so the child keeps the parent's thread count.
// - A team of more than one tells the load sensor (load_sensor.hpp) how long its threads
//   took to start and the longest that one slept at a barrier.
#pragma once

#include <omp.h>

#include <atomic>
#include <chrono>
#include <exception>

#include "lstmcore/load_sensor.hpp"
#include "lstmcore/step_barrier.hpp"

namespace lstmcore {

// True on the thread of a forked child that called fork, whose OpenMP pool is the parent's.
bool holds_parent_thread_pool();

// Runs call(context) on the core's own thread and waits for it to finish.
void run_on_core_thread(void (*call)(void*), void* context);

// body(thread, team, barrier) on every thread of a region of up to `threads` threads;
// `barrier` is the team's StepBarrier. Rethrows a thread's failure after the region.
template <typename Body>
void run_team(int threads, Body&& body) {
  using Clock = std::chrono::steady_clock;
  StepBarrier barrier;
  // For the load sensor: how long the slowest thread took to start, in a team of more
  // than one.
  std::atomic<long long> slowest_start{-1};
  const Clock::time_point launch = Clock::now();
  auto region = [&] {
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      const int team = omp_get_num_threads();
      if (team > 1) {
        const long long lag = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - launch).count();
        long long slowest = slowest_start.load(std::memory_order_relaxed);
        while (lag > slowest && !slowest_start.compare_exchange_weak(slowest, lag, std::memory_order_relaxed)) {
        }
      }
      try {
        body(omp_get_thread_num(), team, barrier);
      } catch (const PassCancelled&) {
        // Another thread failed first; its failure is the one rethrown.
      } catch (...) {
        barrier.cancel(std::current_exception());
      }
    }
  };
  if (threads > 1 && holds_parent_thread_pool()) {
    run_on_core_thread([](void* context) { (*static_cast<decltype(region)*>(context))(); }, &region);
  } else {
    region();
  }
  if (slowest_start.load() >= 0)
    sense_team(std::chrono::nanoseconds(slowest_start.load()), barrier.longest_sleep());
  barrier.rethrow_failure();
}

}  // namespace lstmcore
