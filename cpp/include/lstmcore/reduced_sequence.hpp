// The time loop of the reduced-precision forwards (reduced_lstm.hpp, reduced_gru.hpp,
// reduced_rnn.hpp), for inference: no tape, no backward.
//
// Each thread runs whole sequences, its own rows of the batch, with all of W: no step
// waits for another thread. A batch too small to give every thread a tile of rows runs
// on one thread; at batch 1 the step is the product of one row with W_hh streamed from
// cache, a quarter of float32's bytes in int8. A sequence's outputs do not depend on the
// rows beside it: every product and conversion is row by row, so a sequence gives the
// same bits alone, in a batch, with lengths or on another thread.
#pragma once

#include <algorithm>

#include "lstmcore/reduced_precision.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/team.hpp"
#include "lstmcore/threading.hpp"
#include "lstmcore/time_loop.hpp"

namespace lstmcore {

// A layer-direction's weights: W_ih (G, I) and W_hh (G, H) reduced (W_hh (G, P) for the
// projected LSTM), the biases (G,) in float32.
struct ReducedGatedWeights {
  const ReducedMatrix& weight_ih;
  const ReducedMatrix& weight_hh;
  const float* bias_ih;
  const float* bias_hh;
  GatedWeights<float> biases() const { return {nullptr, nullptr, bias_ih, bias_hh}; }
};

// The threads of a reduced pass, split over the batch when every thread gets a tile of
// rows (PassPlan's rule); on busy cores one thread unless the pass is large enough to
// outweigh a time slice.
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

  // The pre-activations (without bias) of `step`'s time for this thread's rows, one row
  // of weight_ih.rows() values each from this thread's first row on; computed when
  // `step` starts a chunk.
  float* at(Index step, SequenceView<const float> x) {
    const Index first = step - step % chunk_, steps = std::min(chunk_, s_.steps - first);
    const Index first_time = s_.reverse ? s_.time_at(first) - steps + 1 : s_.time_at(first);
    const Index n = rows_.size(), G = w_.rows();
    if (step == first) {
      for (Index t = 0; t < steps; ++t) {
        for (Index r = 0; r < n; ++r) converted_.convert(t * n + r, x.at(first_time + t, rows_.begin + r));
      }
      reduced_product(w_, converted_, steps * n, {projected_.data(), G}, false);
    }
    return projected_.data() + (s_.time_at(step) - first_time) * n * G;
  }

 private:
  const SequenceShape& s_;
  const ReducedMatrix& w_;
  Range rows_;
  Index chunk_;
  ReducedRows converted_;
  PassBuffer<float> projected_;
};

// What a family's element-wise part sees of one step: rows [rows.begin, live_end) of
// time t hold real steps. Row b's input projection is at pre + (b - rows.begin) * G, its
// recurrent product at recurrent + (b - rows.begin) * G (the same buffer, already added,
// unless the family asked for it apart); h_{t-1} of row b is h_prev.row(b).
struct ReducedStep {
  Index step, t;
  Range rows;
  Index live_end;
  float* pre;
  const float* recurrent;
  StateRows<float> h_prev;
};

// The time loop: per thread, its rows; per step, the input projection (a chunk ahead),
// h_{t-1} converted and multiplied by W_hh (into the projection, or apart when
// `recurrent_apart`: the GRU's reset gate multiplies that part alone), then
// `cell.step(ReducedStep, y)` from the thread's element-wise part, make_cell(rows), and
// zeros on the rows past the batch alive at t. h_{t-1} is y's row of the step before, or h0;
// its width, W_hh's depth, is the weights' (the projected LSTM's P, else H).
template <typename MakeCell>
void reduced_sequence(const SequenceShape& s, SequenceView<const float> x, const ReducedGatedWeights& w,
                      const float* h0, SequenceView<float> y, Index gates, bool recurrent_apart,
                      MakeCell&& make_cell) {
  const Index G = gates * s.hidden, H = w.weight_hh.depth();
  const PassPlan plan = plan_reduced_pass(s, gates);
  run_team(plan.threads, [&](const int thread, const int team, StepBarrier&) {
    const PassPart part = pass_part(plan, s, thread, team, 1);
    const Range rows = part.rows;
    if (rows.size() == 0) return;
    const Index r0 = rows.begin;
    auto cell = make_cell(rows);
    ReducedProjection projection(s, w.weight_ih, rows);
    ReducedRows hidden(w.weight_hh.precision(), rows.size(), H);
    PassBuffer<float> apart(recurrent_apart ? rows.size() * G : 0);
    PreviousState<float> h_before(s, H);
    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      const Index live_end = part.live_end(s.active(t));
      float* pre = projection.at(step, x);
      const StateRows<float> h_prev =
          h_before.at(step, {h0, H}, {y.at(s.time_before(step), 0), y.batch_stride}, {r0, live_end});
      for (Index b = r0; b < live_end; ++b) hidden.convert(b - r0, h_prev.row(b));
      float* recurrent = recurrent_apart ? apart.data() : pre;
      reduced_product(w.weight_hh, hidden, live_end - r0, {recurrent, G}, !recurrent_apart);
      cell.step(ReducedStep{step, t, rows, live_end, pre, recurrent, h_prev}, y);
      for (Index b = live_end; b < rows.end; ++b) std::fill_n(y.at(t, b), H, 0.0f);
    }
  });
}

}  // namespace lstmcore
