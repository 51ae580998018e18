#include "lstmcore/reduced_amx.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(LSTMCORE_AMX) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace lstmcore {

namespace {

std::atomic<bool> allowed{true};

bool granted() {
#if defined(LSTMCORE_AMX) && defined(__linux__)
  const char* setting = std::getenv("LSTMCORE_AMX");
  if (setting && std::strcmp(setting, "0") == 0) return false;
  // Linux gives a process AMX's tile state only on request (arch_prctl
  // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); without it a tile instruction faults.
  constexpr long kRequestPermission = 0x1023;
  constexpr long kTileData = 18;
  return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
#else
  return false;
#endif
}

}  // namespace

bool amx_enabled() {
  static const bool available = granted();
  return available && allowed.load(std::memory_order_relaxed);
}

void amx_allowed(bool allow) { allowed.store(allow, std::memory_order_relaxed); }

}  // namespace lstmcore
