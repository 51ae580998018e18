// Keeping freed memory in the process, so repeated passes reuse pages instead of faulting
// fresh ones in.
//
// A pass over (T, B) allocates tens of MB (tapes, gradients, NumPy outputs). glibc returns
// large freed blocks to the system, and every new one then costs a page fault per 4 kB
// with the kernel zeroing it: measured here as a third of a small inference call
// (I = H = 128, T = 100, B = 32). Raising the mmap and trim thresholds keeps those blocks
// in the heap for the next call. It is a process-wide setting, so the Python package
// makes it optional (LSTMCORE_RETAIN_MEMORY=0). The cost: the heap keeps its peak size.
#pragma once

namespace lstmcore {

// Returns false where the C library has no such setting (not glibc).
bool retain_freed_memory();

}  // namespace lstmcore
