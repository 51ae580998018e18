#include "lstmcore/memory.hpp"

// Any C library header defines __GLIBC__; without one before the test below, the test
// was always false and the setting never applied.
#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lstmcore {

bool retain_freed_memory() {
#if defined(__GLIBC__)
  // Blocks up to 32 MB come from the heap (the largest mmap threshold 64-bit glibc
  // accepts), and the heap's free top is kept up to 1 GB before it is given back.
  constexpr int kLargestMmapThreshold = 32 * 1024 * 1024;
  constexpr int kOneGigabyte = 1024 * 1024 * 1024;
  const bool threshold = mallopt(M_MMAP_THRESHOLD, kLargestMmapThreshold) == 1;
  const bool trim = mallopt(M_TRIM_THRESHOLD, kOneGigabyte) == 1;
  return threshold && trim;
#else
  return false;
#endif
}

}  // namespace lstmcore
