#include "lstmcore/threading.hpp"

#include "lstmcore/load_sensor.hpp"

#include <omp.h>

namespace lstmcore {

namespace {
std::atomic<int> requested_threads{0};
}

int max_threads() {
  const int requested = requested_threads.load(std::memory_order_relaxed);
  return requested > 0 ? requested : omp_get_max_threads();
}

void set_max_threads(int threads) { requested_threads.store(std::max(threads, 0)); }

bool threads_set_by_caller() { return requested_threads.load(std::memory_order_relaxed) > 0; }

bool adapt_to_busy_cores() { return !threads_set_by_caller() && cores_busy(); }

}  // namespace lstmcore
