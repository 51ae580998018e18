#include "lstmcore/load_sensor.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lstmcore {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// A thread that waits this long to start or at a barrier had no core. A quiet machine
// wakes a sleeping OpenMP thread in tens of microseconds; a busy one makes it wait for a
// time slice of the process on its core, milliseconds.
constexpr nanoseconds kSlowStart = microseconds(700);
constexpr nanoseconds kLongSleep = microseconds(1500);
constexpr nanoseconds kFirstHold = milliseconds(50);
constexpr nanoseconds kLongestHold = milliseconds(3200);

bool enabled_from_environment() {
  const char* value = std::getenv("LSTMCORE_SENSE_LOAD");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

std::atomic<bool> enabled{enabled_from_environment()};
std::atomic<long long> busy_until{0};  // Clock ticks; 0 when not holding
std::atomic<long long> hold{kFirstHold.count()};
std::atomic<long> passes_sensed{0}, busy_verdicts{0};
// Slow passes sensed since the last quick one: 1 a hiccup so far, 2 a busy verdict, more
// a verdict renewed.
std::atomic<long> slow_in_a_row{0};
std::atomic<long> lone_slow_passes{0};  // slow passes followed by a quick one
std::atomic<long> holds_renewed{0};
std::atomic<long long> last_start{0}, last_sleep{0};

long long now_ticks() { return std::chrono::duration_cast<nanoseconds>(Clock::now().time_since_epoch()).count(); }

// The calling thread's time on a core and time waiting for one (Linux's schedstat, ns).
struct SchedulerTimes {
  long long running = -1;
  long long waiting = -1;
};

SchedulerTimes scheduler_times() {
  SchedulerTimes times;
  if (std::FILE* file = std::fopen("/proc/thread-self/schedstat", "r")) {
    if (std::fscanf(file, "%lld %lld", &times.running, &times.waiting) != 2) times = {};
    std::fclose(file);
  }
  return times;
}

// This thread's scheduler times when it last judged the cores busy.
thread_local SchedulerTimes times_at_verdict;

// Whether the calling thread itself waited for a core for more than a tenth of the time
// it could run since its last busy verdict: the cores are still busy, and a
// multi-threaded pass would only find so again, at the cost of a slow pass.
bool still_waiting_for_cores() {
  const SchedulerTimes now = scheduler_times(), before = times_at_verdict;
  times_at_verdict = now;
  if (now.running < 0 || before.running < 0) return false;
  const long long ran = now.running - before.running, waited = now.waiting - before.waiting;
  constexpr long long kEnoughToJudge = 1'000'000;  // 1 ms runnable
  return ran + waited >= kEnoughToJudge && waited * 10 > ran + waited;
}

}  // namespace

bool cores_busy() {
  if (!enabled.load(std::memory_order_relaxed)) return false;
  const long long until = busy_until.load(std::memory_order_relaxed);
  if (until == 0) return false;
  const long long now = now_ticks();
  if (now < until) return true;
  // The hold is over. Before a multi-threaded pass tries the cores again, ask the
  // scheduler whether this thread waited for one meanwhile.
  if (still_waiting_for_cores()) {
    holds_renewed.fetch_add(1, std::memory_order_relaxed);
    busy_until.store(now + hold.load(std::memory_order_relaxed), std::memory_order_relaxed);
    return true;
  }
  busy_until.store(0, std::memory_order_relaxed);
  return false;
}

void sense_team(nanoseconds slowest_start, nanoseconds longest_sleep) {
  if (!enabled.load(std::memory_order_relaxed)) return;
  passes_sensed.fetch_add(1, std::memory_order_relaxed);
  last_start.store(slowest_start.count(), std::memory_order_relaxed);
  last_sleep.store(longest_sleep.count(), std::memory_order_relaxed);
  const long long now = now_ticks();
  const long long held = hold.load(std::memory_order_relaxed);
  if (slowest_start < kSlowStart && longest_sleep < kLongSleep) {
    // Quiet: the next hold is halved, so that a machine busy most of the time, with
    // quiet moments, keeps long holds.
    hold.store(std::max<long long>(held / 2, kFirstHold.count()), std::memory_order_relaxed);
    if (slow_in_a_row.exchange(0, std::memory_order_relaxed) == 1) {
      lone_slow_passes.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  // A slow pass between quick ones is a hiccup, not busy cores: on a virtual machine the
  // host takes a vCPU away now and then (steal time), and the guest's scheduler now and
  // then wakes both threads of a team on one core until it balances them. Either lasts a
  // pass. Other processes on the cores slow every pass, so the second slow pass in a row
  // is the verdict; until a quick one is sensed, each slow pass after it renews it at once.
  const long in_a_row = slow_in_a_row.fetch_add(1, std::memory_order_relaxed) + 1;
  if (in_a_row < 2) return;
  // Busy again after a busy verdict: hold twice as long. Several of the caller's threads
  // may report at once; any of their updates will do.
  busy_verdicts.fetch_add(1, std::memory_order_relaxed);
  const bool again = in_a_row > 2;
  const long long next = again ? std::min<long long>(2 * held, kLongestHold.count()) : held;
  hold.store(next, std::memory_order_relaxed);
  busy_until.store(now + next, std::memory_order_relaxed);
  times_at_verdict = scheduler_times();
}

LoadSensorState load_sensor_state() {
  LoadSensorState state;
  state.passes_sensed = passes_sensed.load();
  state.busy_verdicts = busy_verdicts.load();
  state.holds_renewed = holds_renewed.load();
  state.lone_slow_passes = lone_slow_passes.load();
  state.hold_seconds = duration<double>(nanoseconds(hold.load())).count();
  state.last_slowest_start_us = last_start.load() * 1e-3;
  state.last_longest_sleep_us = last_sleep.load() * 1e-3;
  // Read only: cores_busy() would also judge an expired hold (and renew or end it).
  state.busy = enabled.load() && now_ticks() < busy_until.load();
  state.enabled = enabled.load();
  return state;
}

void reset_load_sensor(bool on) {
  enabled.store(on);
  busy_until.store(0);
  hold.store(kFirstHold.count());
  passes_sensed.store(0);
  busy_verdicts.store(0);
  slow_in_a_row.store(0);
  lone_slow_passes.store(0);
  holds_renewed.store(0);
}

}  // namespace lstmcore
