#include "lstmcore/peak.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <chrono>

#include "lstmcore/team.hpp"

namespace lstmcore {

namespace {

using Packet = Eigen::internal::packet_traits<float>::type;
constexpr int kLanes = Eigen::internal::unpacket_traits<Packet>::size;
// Enough independent accumulators to cover FMA latency times the FMA ports.
constexpr int kChains = 12;

// Runs `rounds` x kChains FMAs on packets; returns a value so the work is not elided.
float fma_chains(long rounds) {
  using namespace Eigen::internal;
  Packet acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = pset1<Packet>(1.0f + k * 1e-3f);
  const Packet a = pset1<Packet>(0.999999f), b = pset1<Packet>(1e-7f);
  for (long r = 0; r < rounds; ++r) {
    for (int k = 0; k < kChains; ++k) acc[k] = pmadd(acc[k], a, b);
  }
  Packet sum = acc[0];
  for (int k = 1; k < kChains; ++k) sum = padd(sum, acc[k]);
  return predux(sum);
}

}  // namespace

double fma_peak_gflops(int threads, double seconds) {
  threads = std::max(threads, 1);
  const long rounds = 1 << 20;
  double best = 0.0;
  volatile float sink = 0.0f;
  const auto start = std::chrono::steady_clock::now();
  do {
    const auto t0 = std::chrono::steady_clock::now();
    // run_team, like every pass, so that a forked child measures it without a hang.
    run_team(threads, [&](int, int, StepBarrier&) {
      const float value = fma_chains(rounds);
#pragma omp critical
      sink = sink + value;
    });
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops = 2.0 * kLanes * kChains * static_cast<double>(rounds) * threads;
    best = std::max(best, flops / elapsed * 1e-9);
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds);
  return best;
}

}  // namespace lstmcore
