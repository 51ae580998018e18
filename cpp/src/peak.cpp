#include "lstmcore/peak.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <vector>

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

// Sums `packets` packets of `data` into kChains chains; returns a value so the loads are
// not elided.
float read_packets(const float* data, long packets) {
  using namespace Eigen::internal;
  Packet acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = pset1<Packet>(0.0f);
  long p = 0;
  for (; p + kChains <= packets; p += kChains) {
    for (int k = 0; k < kChains; ++k) acc[k] = padd(acc[k], pload<Packet>(data + (p + k) * kLanes));
  }
  for (; p < packets; ++p) acc[0] = padd(acc[0], pload<Packet>(data + p * kLanes));
  Packet sum = acc[0];
  for (int k = 1; k < kChains; ++k) sum = padd(sum, acc[k]);
  return predux(sum);
}

}  // namespace

double read_rate_gbps(long bytes, double seconds) {
  constexpr long kPacketBytes = kLanes * sizeof(float);
  const long packets = std::max<long>(1, (bytes + kPacketBytes - 1) / kPacketBytes);
  std::vector<float, Eigen::aligned_allocator<float>> buffer(static_cast<std::size_t>(packets * kLanes), 1.0f);
  // Passes of at least 1 MB in all, so a small buffer's pass is not lost in the clock's cost.
  const long repeats = std::max<long>(1, (1L << 20) / (packets * kPacketBytes));
  double best = 0.0;
  volatile float sink = 0.0f;
  read_packets(buffer.data(), packets);  // brings the buffer into cache
  const auto start = std::chrono::steady_clock::now();
  do {
    const auto t0 = std::chrono::steady_clock::now();
    float value = 0.0f;
    for (long r = 0; r < repeats; ++r) value += read_packets(buffer.data(), packets);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink + value;
    best = std::max(best, static_cast<double>(packets * kPacketBytes) * repeats / elapsed * 1e-9);
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds);
  return best;
}

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
