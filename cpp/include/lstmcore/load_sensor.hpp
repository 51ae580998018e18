// Whether other work holds the cores, as the passes themselves find it.
//
// A pass split over threads waits for all of them at every barrier. On a machine whose
// cores are busy with other processes (or with more of the caller's own threads than
// cores), a thread that has no core waits for the scheduler to give it one: a time
// slice, milliseconds, at each barrier, where a quiet machine takes well under a
// microsecond. A pass of a hundred steps then takes tens of times longer than on one
// thread. So every multi-threaded pass times how long its threads took to start and the
// longest any of them slept at a barrier. Past a threshold no quiet machine reaches in two
// passes in a row (one alone is a hiccup: a vCPU the host took away, a team the
// scheduler stacked on one core for a moment), the cores are "busy" for a hold time, and
// passes planned meanwhile (threading.hpp) run on one thread or, when large enough,
// split over the batch, which has only a few barriers. The first multi-threaded pass
// after the hold senses again; each busy verdict in a row doubles the hold, up to a
// limit, so that a machine that stays busy pays for one slow pass in that long.
#pragma once

#include <chrono>

namespace lstmcore {

// True while a recent multi-threaded pass found the cores busy.
bool cores_busy();

// What a multi-threaded pass saw: the time its slowest thread took to start, and the
// longest that any thread slept at a barrier.
void sense_team(std::chrono::nanoseconds slowest_start, std::chrono::nanoseconds longest_sleep);

struct LoadSensorState {
  long passes_sensed = 0;
  long busy_verdicts = 0;
  long holds_renewed = 0;     // holds started again because the caller waited for a core
  long lone_slow_passes = 0;  // slow passes that a quick one followed: no verdict
  double hold_seconds = 0;    // the current hold (doubled by consecutive busy verdicts)
  double last_slowest_start_us = 0;
  double last_longest_sleep_us = 0;
  bool busy = false;
  bool enabled = true;
};

LoadSensorState load_sensor_state();

// Forgets what was sensed (tests), and sets whether sensing is on (LSTMCORE_SENSE_LOAD=0
// turns it off, for measurements of the plain thread count).
void reset_load_sensor(bool enabled);

}  // namespace lstmcore
