#include "lstmcore/memory.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lstmcore {

bool retain_freed_memory() {
#if defined(__GLIBC__)
  // Blocks up to 1 GB come from the heap, whose free top is kept up to 1 GB before it is
  // given back. Older glibc refuses mmap thresholds above 32 MB: then 32 MB.
  constexpr int kOneGigabyte = 1024 * 1024 * 1024;
  constexpr int kOldLimit = 32 * 1024 * 1024;
  const bool threshold = mallopt(M_MMAP_THRESHOLD, kOneGigabyte) == 1 || mallopt(M_MMAP_THRESHOLD, kOldLimit) == 1;
  const bool trim = mallopt(M_TRIM_THRESHOLD, kOneGigabyte) == 1;
  return threshold && trim;
#else
  return false;
#endif
}

}  // namespace lstmcore
