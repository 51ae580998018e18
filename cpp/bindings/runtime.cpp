// The core's runtime: threads, the load sensor, freed memory, fingerprints, the FMA peak and
// the cache read rate.
#include <cstddef>
#include <cstdint>
#include <string>

#include "arrays.hpp"
#include "lstmcore/fingerprint.hpp"
#include "lstmcore/load_sensor.hpp"
#include "lstmcore/memory.hpp"
#include "lstmcore/peak.hpp"
#include "lstmcore/threading.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

py::dict load_sensor() {
  const auto state = load_sensor_state();
  py::dict d;
  d["enabled"] = state.enabled;
  d["busy"] = state.busy;
  d["passes_sensed"] = state.passes_sensed;
  d["busy_verdicts"] = state.busy_verdicts;
  d["holds_renewed"] = state.holds_renewed;
  d["lone_slow_passes"] = state.lone_slow_passes;
  d["hold_seconds"] = state.hold_seconds;
  d["last_slowest_start_us"] = state.last_slowest_start_us;
  d["last_longest_sleep_us"] = state.last_longest_sleep_us;
  return d;
}

std::uint64_t array_fingerprint(const py::array& a) {
  if (!(a.flags() & py::array::c_style)) throw py::value_error("expected a C-contiguous array");
  const auto* bytes = static_cast<const unsigned char*>(a.data());
  const auto size = static_cast<std::size_t>(a.nbytes());
  py::gil_scoped_release release;
  return fingerprint(bytes, size);
}

double peak_gflops(int threads, double seconds) {
  py::gil_scoped_release release;
  return fma_peak_gflops(threads, seconds);
}

double read_rate(long long bytes, double seconds) {
  // A GiB at most: the measurement allocates the buffer it reads.
  constexpr long long kMostBytes = 1LL << 30;
  if (bytes < 1 || bytes > kMostBytes) {
    throw py::value_error("expected bytes in [1, " + std::to_string(kMostBytes) + "], got " +
                          std::to_string(bytes));
  }
  if (!(seconds >= 0.0 && seconds <= 60.0)) {
    throw py::value_error("expected seconds in [0, 60], got " + std::to_string(seconds));
  }
  py::gil_scoped_release release;
  return read_rate_gbps(static_cast<long>(bytes), seconds);
}

}  // namespace

void register_runtime(py::module_& m) {
  using namespace pybind11::literals;
  m.def("set_num_threads", &set_max_threads, "threads"_a, "Threads the core may use; 0 restores OpenMP's default.");
  m.def("get_num_threads", &max_threads);
  m.def(
      "requested_threads", [] { return threads_set_by_caller() ? max_threads() : 0; },
      "The thread count set by set_num_threads, or 0 for the default.");
  m.def("load_sensor", &load_sensor,
        "What the load sensor (load_sensor.hpp) found: whether the cores are busy, and its counts.");
  m.def("reset_load_sensor", &reset_load_sensor, "enabled"_a,
        "Forget what the load sensor found, and turn it on or off.");
  m.def("fingerprint", &array_fingerprint, "array"_a,
        "A 64-bit fingerprint of a C-contiguous array's bytes (fingerprint.hpp): tapes use it to "
        "notice parameters changed since the forward pass.");
  m.def("retain_freed_memory", &retain_freed_memory,
        "Keep freed blocks in the heap for reuse (glibc); False where unsupported.");
  m.def("fma_peak_gflops", &peak_gflops, "threads"_a, "seconds"_a = 0.5,
        "Measured fp32 FMA throughput in GFLOP/s (benchmarks report a percentage of it).");
  m.def("read_rate_gbps", &read_rate, "bytes"_a, "seconds"_a = 0.2,
        "GB/s at which one thread reads a buffer of `bytes` again and again: a cache level's rate when it fits.");
}

}  // namespace lstmcore::bindings
