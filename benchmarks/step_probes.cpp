// Probes of what bounds a float32 batch-1 step, outside the core (benchmarks/step_probes.py
// builds and runs this; docs/inference.md quotes it).
//
// Each probe streams a packed W_hh (4H x H, panels of 32 columns, as the core packs it for
// AVX-512) through the batch-1 product the core's step runs: per panel, one depth at a
// time, a broadcast of h[k] times the panel's row, the depths split by parity into two
// chains per vector. Nothing else runs: no cells, no barrier, no call into the core. So a
// probe's time per step is what the product alone costs on this CPU, to set beside the
// core's step and beside the read rate of W_hh's size (`_core.read_rate_gbps`).
//
//   product      the product alone
//   alternating  the product alone, odd steps taking the panels last to first, as the
//                core's steps do (PanelOrder): a step starts on the panels still in cache
//   interleaved  the alternating product with the input projection of 8 later steps
//                mixed into its loop: one depth of an 8-row projection tile (16
//                multiply-adds) after every 8 depths of the product, so its FMAs could use
//                the units the memory-bound product leaves idle (the core's batch-1 step
//                at I=H does this)
//   after        the same projection work, run after each group of 8 panels instead
//
// usage: step_probes MODE H [STEPS]   (H a multiple of 8; of 64 for the projection modes)
// prints: MODE H us_per_step
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

typedef float Vec __attribute__((vector_size(64)));  // 16 floats; two such per panel row

namespace {

constexpr int kWidth = 32;  // columns per panel
constexpr int kRows = 8;    // rows of the projection tile

Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }

// x - 0 is x for every x (-0 included), so this compiles to a bare broadcast; 0 + x would not.
Vec broadcast(float x) { return x - Vec{}; }

// The projection tile's accumulators: kRows rows by two vectors.
struct Tile {
  Vec acc[2 * kRows] = {};
};

// One depth of the projection tile: x's kRows values at depth k (packed [k][kRows]) times
// the W_ih panel's row k.
inline void projection_depth(const float* x, const float* panel, int k, Tile& tile) {
  const Vec lo = load(panel + k * kWidth), hi = load(panel + k * kWidth + 16);
  for (int r = 0; r < kRows; ++r) {
    const Vec a = broadcast(x[k * kRows + r]);
    tile.acc[2 * r] += a * lo;
    tile.acc[2 * r + 1] += a * hi;
  }
}

// h (depth) times one panel (depth x kWidth) into out[0, kWidth); with a tile, one of its
// depths after every 8 of the product's, from projection depth *next on.
template <bool kInterleave>
inline void product_panel(const float* h, const float* panel, int depth, float* out, const float* x,
                          const float* ih_panel, Tile* tile, int* next) {
  Vec lo0{}, lo1{}, hi0{}, hi1{};
  for (int k = 0; k < depth; k += 8) {
    for (int j = k; j < k + 8; j += 2) {
      const Vec a0 = broadcast(h[j]), a1 = broadcast(h[j + 1]);
      lo0 += a0 * load(panel + j * kWidth);
      hi0 += a0 * load(panel + j * kWidth + 16);
      lo1 += a1 * load(panel + (j + 1) * kWidth);
      hi1 += a1 * load(panel + (j + 1) * kWidth + 16);
    }
    if constexpr (kInterleave) projection_depth(x, ih_panel, (*next)++, *tile);
  }
  store(out, lo0 + lo1);
  store(out + 16, hi0 + hi1);
}

float* filled(std::size_t count) {
  auto* p = static_cast<float*>(std::aligned_alloc(64, ((count * sizeof(float) + 63) / 64) * 64));
  for (std::size_t i = 0; i < count; ++i) p[i] = static_cast<float>(i % 7) * 0.01f;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: step_probes product|alternating|interleaved|after H [STEPS]\n");
    return 2;
  }
  const char* mode = argv[1];
  const int hidden = std::atoi(argv[2]);
  const int steps = argc > 3 ? std::atoi(argv[3]) : 2000;
  const bool interleaved = std::strcmp(mode, "interleaved") == 0, after = std::strcmp(mode, "after") == 0;
  const bool alternating = std::strcmp(mode, "alternating") == 0;
  if (!interleaved && !after && !alternating && std::strcmp(mode, "product") != 0) {
    std::fprintf(stderr, "step_probes: mode must be product, alternating, interleaved or after, got %s\n", mode);
    return 2;
  }
  if (hidden < 8 || hidden % 8 != 0 || ((interleaved || after) && hidden % 64 != 0) || steps < 1) {
    std::fprintf(stderr, "step_probes: H must be a multiple of 8 (of 64 with a projection), got %d\n", hidden);
    return 2;
  }
  const int depth = hidden, panels = 4 * hidden / kWidth;
  float* weight_hh = filled(static_cast<std::size_t>(panels) * depth * kWidth);
  float* weight_ih = filled(static_cast<std::size_t>(8 * ((panels + 7) / 8)) * depth * kWidth);
  float* h = filled(depth);
  float* x = filled(static_cast<std::size_t>(depth) * kRows);
  std::vector<float> out(static_cast<std::size_t>(panels) * kWidth);
  // Each group of 8 panels shares one projection panel, whose depth (= H) it covers at one
  // depth per 8 of the product's; the projection panels rotate over 8 steps, so each is
  // read once in 8 steps, as a projection 8 steps ahead reads W_ih.
  const int groups = (panels + 7) / 8;
  const bool projecting = interleaved || after;
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    const auto start = std::chrono::steady_clock::now();
    Vec kept{};  // the projection's results, kept live
    for (int step = 0; step < steps; ++step) {
      for (int group = 0; group < groups; ++group) {
        const float* ih_panel = weight_ih + static_cast<std::size_t>((step % 8) * groups + group) * depth * kWidth;
        Tile tile;
        int next = 0;
        for (int i = group * 8; i < std::min(panels, group * 8 + 8); ++i) {
          const int p = (alternating || projecting) && step % 2 == 1 ? panels - 1 - i : i;
          const float* panel = weight_hh + static_cast<std::size_t>(p) * depth * kWidth;
          if (interleaved) {
            product_panel<true>(h, panel, depth, out.data() + p * kWidth, x, ih_panel, &tile, &next);
          } else {
            product_panel<false>(h, panel, depth, out.data() + p * kWidth, nullptr, nullptr, nullptr, nullptr);
          }
        }
        if (after) {
          for (int k = 0; k < depth; ++k) projection_depth(x, ih_panel, k, tile);
        }
        for (int r = 0; r < 2 * kRows && projecting; ++r) kept += tile.acc[r];
      }
      // The next step reads what this one wrote, as h_t depends on every panel's output.
      h[step % depth] += out[step % out.size()] * 1e-9f + kept[step % 16] * 1e-12f;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, seconds / steps);
  }
  std::printf("%s %d %.4f\n", mode, hidden, best * 1e6);
  std::free(weight_hh);
  std::free(weight_ih);
  std::free(h);
  std::free(x);
  return 0;
}
