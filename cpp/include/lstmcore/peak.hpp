// Measurements, not kernels: the machine's fused multiply-add throughput, against which
// the benchmarks report what fraction of peak a pass reaches, and the rate at which one
// thread reads a buffer held in cache, which bounds a batch-1 step (it reads all of W_hh).
#pragma once

namespace lstmcore {

// GFLOP/s (2 flops per FMA) of independent FMA chains in the widest vectors the build
// targets, on `threads` threads at once, each running for about `seconds`.
double fma_peak_gflops(int threads, double seconds);

// GB/s at which one thread reads `bytes` (rounded up to whole packets) again and again
// with packet loads added into independent chains: the best pass in about `seconds`.
// A buffer that fits a cache level measures that level's rate.
double read_rate_gbps(long bytes, double seconds);

}  // namespace lstmcore
