// The LSTM family's forward with reduced-precision weights (reduced_precision.hpp), for
// inference: no tape, no backward. The same cells as lstm_sequence.hpp (plain, peephole,
// coupled, general activations, ablation clamps, zoneout's expectation) on the same
// sequences (either layout, either direction, variable lengths as packed batches).
//
// Each thread runs whole sequences, its own rows of the batch, with all of W: no step
// waits for another thread. A batch too small to give every thread a tile of rows runs
// on one thread; at batch 1 the step is the product of one row with W_hh streamed from
// cache, a quarter of float32's bytes in int8.
#pragma once

#include <algorithm>

#include "lstmcore/lstm_options.hpp"
#include "lstmcore/reduced_precision.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/team.hpp"
#include "lstmcore/threading.hpp"
#include "lstmcore/time_loop.hpp"
#include "lstmcore/zoneout.hpp"

namespace lstmcore {

// A layer-direction's weights: W_ih (G, I) and W_hh (G, H) reduced, the biases (G,) in
// float32.
struct ReducedGatedWeights {
  const ReducedMatrix& weight_ih;
  const ReducedMatrix& weight_hh;
  const float* bias_ih;
  const float* bias_hh;
};

// The threads of a reduced pass and its rows per thread: split over the batch when every
// thread gets a tile of rows (PassPlan's rule), on one thread on busy cores unless the
// pass is large enough to outweigh a time slice.
inline PassPlan plan_reduced_pass(const SequenceShape& s, Index gates) {
  PassPlan plan{1, true};
  const Index threads = std::min<Index>(max_threads(), s.batch / kMinBatchRowsPerThread);
  if (threads < 2) return plan;
  plan.threads = static_cast<int>(threads);
  const double flops = 2.0 * s.rows() * (s.input + s.hidden) * gates * s.hidden;
  if (adapt_to_busy_cores() && flops < kBusyMinFlopsToSplit) plan.threads = 1;
  for (int thread = 0; s.batch_sizes && plan.threads > 1 && thread < plan.threads; ++thread) {
    if (pass_part(plan, s, thread, plan.threads, 1).rows.size() < kMinBatchRowsPerThread) plan.threads = 1;
  }
  return plan;
}

// This thread's input projection, x_t W_ih^T for its rows, a chunk of steps ahead
// (kChunkRows rows), as ProjectionChunks does for the whole batch.
class ReducedProjection {
 public:
  ReducedProjection(const SequenceShape& s, const ReducedMatrix& weight_ih, Range rows)
      : s_(s),
        w_(weight_ih),
        rows_(rows),
        chunk_(std::clamp<Index>(kChunkRows / std::max<Index>(rows.size(), 1), 1, s.steps)),
        converted_(weight_ih.precision(), chunk_ * rows.size(), s.input),
        projected_(chunk_ * rows.size() * weight_ih.rows()) {}

  // The pre-activations (without bias) of `step`'s time for this thread's row b are at
  // row(step, b), weight_ih.rows() values; computed when `step` starts a chunk.
  float* at(Index step, SequenceView<const float> x, Index b) {
    const Index first = step - step % chunk_, steps = std::min(chunk_, s_.steps - first);
    const Index first_time = s_.reverse ? s_.time_at(first) - steps + 1 : s_.time_at(first);
    const Index n = rows_.size(), G = w_.rows();
    if (step == first) {
      for (Index t = 0; t < steps; ++t) {
        for (Index r = 0; r < n; ++r) converted_.convert(t * n + r, x.at(first_time + t, rows_.begin + r));
      }
      reduced_product(w_, converted_, steps * n, {projected_.data(), G}, false);
    }
    return projected_.data() + ((s_.time_at(step) - first_time) * n + (b - rows_.begin)) * G;
  }

 private:
  const SequenceShape& s_;
  const ReducedMatrix& w_;
  Range rows_;
  Index chunk_;
  ReducedRows converted_;
  PassBuffer<float> projected_;
};

// x (T, B, I), h0 and c0 (B, H), y (T, B, H) written, c_n (B, H) each sequence's last c_t
// written: as lstm_forward without a tape.
template <template <typename> class Cell>
void reduced_lstm_forward(const SequenceShape& s, SequenceView<const float> x, const ReducedGatedWeights& w,
                          const LstmOptions<float>& options, const float* h0, const float* c0,
                          SequenceView<float> y, float* c_n) {
  constexpr Index K = Cell<float>::kGates;
  const Index B = s.batch, H = s.hidden, G = K * H;
  const PassPlan plan = plan_reduced_pass(s, K);
  PassBuffer<float> bias(G), cell_pair(2 * B * H);
  fused_gate_bias<float>({nullptr, nullptr, w.bias_ih, w.bias_hh}, K, K, H, {0, H}, bias.data());

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier&) {
    const Range rows = pass_part(plan, s, thread, team, 1).rows;
    const PassPart part{{0, H}, rows, {0, s.input}};
    if (rows.size() == 0) return;
    const Index r0 = rows.begin;
    const Cell<float> cell(options, {0, H}, H, bias.data());
    ReducedProjection projection(s, w.weight_ih, rows);
    ReducedRows hidden(w.weight_hh.precision(), rows.size(), H);
    PreviousState<float> h_before(s, H), c_before(s, H);
    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step), t_before = s.time_before(step);
      const Index live_end = part.live_end(s.active(t)), live = live_end - r0;
      float* pre = projection.at(step, x, r0);
      const StateRows<float> h_prev =
          h_before.at(step, {h0, H}, {y.at(t_before, 0), y.batch_stride}, {r0, live_end});
      float* c_t = cell_pair.data() + (step & 1) * B * H;
      const float* c_later = cell_pair.data() + ((step - 1) & 1) * B * H;
      const StateRows<float> c_prev = c_before.at(step, {c0, H}, {c_later, H}, {r0, live_end});
      for (Index b = r0; b < live_end; ++b) hidden.convert(b - r0, h_prev.row(b));
      reduced_product(w.weight_hh, hidden, live, {pre, G}, true);
      for (Index b = r0; b < live_end; ++b) {
        float* h_t = y.at(t, b);
        cell.forward(pre + (b - r0) * G, c_prev.row(b), c_t + b * H, h_t);
        if (options.zoneout()) {
          Zoneout<float>(options, t * B + b, H, 0)
              .forward(H, c_prev.row(b), c_t + b * H, h_prev.row(b), h_t, nullptr);
        }
      }
      for (Index b = part.live_end(s.active_after(step)); b < live_end && c_n; ++b) {
        std::copy_n(c_t + b * H, H, c_n + b * H);
      }
      for (Index b = live_end; b < rows.end; ++b) std::fill_n(y.at(t, b), H, 0.0f);
    }
  });
}

}  // namespace lstmcore
