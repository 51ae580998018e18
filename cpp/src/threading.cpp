#include "lstmcore/threading.hpp"

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

}  // namespace lstmcore
