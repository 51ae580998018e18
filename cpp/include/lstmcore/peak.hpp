// A measurement, not a kernel: the machine's fused multiply-add throughput, against
// which the benchmarks report what fraction of peak a pass reaches.
#pragma once

namespace lstmcore {

// GFLOP/s (2 flops per FMA) of independent FMA chains in the widest vectors the build
// targets, on `threads` threads at once, each running for about `seconds`.
double fma_peak_gflops(int threads, double seconds);

}  // namespace lstmcore
