// The time loop of the reduced-precision forwards (reduced_lstm.hpp, reduced_gru.hpp,
// reduced_rnn.hpp), for inference: no tape, no backward.
//
// A batch that gives every thread a tile of rows is split over the batch: each thread
// runs whole sequences, its own rows, with all of W, and no step waits for another
// thread. A smaller batch (batch 1: the step is the product of one row with W_hh
// streamed from cache, a quarter of float32's bytes in int8) is split over W's rows,
// the products' output columns, when a step's product is large enough to pay for two
// barriers a step: each thread converts the whole h_{t-1} for itself and multiplies it
// by its panels of W_hh (and x_t by its panels of W_ih) into buffers the team shares;
// after a barrier thread 0 runs the element-wise part on every unit, and a second
// barrier publishes h_t. A sequence's outputs do not depend on the rows beside it or on
// the split: every product and conversion is row by row, and each output column is
// summed in the same order whichever thread computes it, so a sequence gives the same
// bits alone, in a batch, with lengths or on any number of threads.
#pragma once

#include <algorithm>
#include <optional>

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

// The threads of a reduced pass and its split. Over the batch when every thread gets a
// tile of rows (PassPlan's rule), on busy cores only if the pass is large enough that
// its work outweighs a time slice; where lengths leave a thread less than a tile, one
// thread. A batch smaller than a tile a thread splits over W's rows when a thread's share
// of a step's recurrent product (`depth`: W_hh's, the projected LSTM's P) is large enough
// to pay for two barriers a step: plan_threads' 100k flops for bfloat16, 150k for int8,
// whose products take half as long (at batch 1 an LSTM of I=H=192 ran slower on two
// threads, one of 224 faster); on busy cores, one thread.
inline PassPlan plan_reduced_pass(const SequenceShape& s, Index gates, Index depth, Precision precision) {
  const Index batch_threads = std::min<Index>(max_threads(), s.batch / kMinBatchRowsPerThread);
  if (batch_threads >= 2) {
    const PassPlan plan{static_cast<int>(batch_threads), true};
    for (int thread = 0; s.batch_sizes && thread < plan.threads; ++thread) {
      if (pass_part(plan, s, thread, plan.threads, 1).rows.size() < kMinBatchRowsPerThread) return {1, false};
    }
    const double flops = 2.0 * s.rows() * (s.input + depth) * gates * s.hidden;
    if (flops < kBusyMinFlopsToSplit && adapt_to_busy_cores()) return {1, false};
    return plan;
  }
  const double min_flops_per_thread =
      precision == Precision::int8 ? 1.5 * kMinFlopsPerThreadStep : kMinFlopsPerThreadStep;
  const int threads = plan_threads(2.0 * s.batch * gates * s.hidden * depth, s.hidden, min_flops_per_thread);
  if (threads < 2 || adapt_to_busy_cores()) return {1, false};
  return {threads, false};
}

// A thread's share of a reduced pass: its batch rows, the panels of W_ih and W_hh (the
// same rows of each) whose output columns it computes, and whether it runs the
// element-wise part (which covers the rows' every unit).
struct ReducedPart {
  PassPart pass;
  Range panels;
  bool runs_cells;
};

inline ReducedPart reduced_part(const PassPlan& plan, const SequenceShape& s, const ReducedGatedWeights& w,
                                int thread, int team) {
  const Index panels = w.weight_hh.panels();  // W_ih's too: both have a row per gate unit
  if (plan.by_batch) return {pass_part(plan, s, thread, team, 1), {0, panels}, true};
  return {{{0, s.hidden}, {0, s.batch}, {0, s.input}}, split_range(panels, thread, team, kPanelAlign), thread == 0};
}

// Steps of input projection a chunk holds for `rows` rows: kChunkRows rows in all.
inline Index reduced_chunk_steps(const SequenceShape& s, Index rows) {
  return std::clamp<Index>(kChunkRows / std::max<Index>(rows, 1), 1, s.steps);
}

// This thread's input projection, x_t W_ih^T for its rows and its panels of W_ih, a
// chunk of steps ahead (reduced_chunk_steps), as ProjectionChunks does for the whole
// batch, into `projected` (chunk steps x rows x W_ih's rows; shared by a team split over
// panels, each thread writing its columns).
class ReducedProjection {
 public:
  ReducedProjection(const SequenceShape& s, const ReducedMatrix& weight_ih, Range rows, Range panels,
                    float* projected)
      : s_(s),
        w_(weight_ih),
        rows_(rows),
        panels_(panels),
        chunk_(reduced_chunk_steps(s, rows.size())),
        converted_(weight_ih.precision(), chunk_ * rows.size(), s.input),
        projected_(projected) {}

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
      reduced_product(w_, panels_, converted_, steps * n, {projected_, G}, false);
    }
    return projected_ + (s_.time_at(step) - first_time) * n * G;
  }

 private:
  const SequenceShape& s_;
  const ReducedMatrix& w_;
  Range rows_;
  Range panels_;
  Index chunk_;
  ReducedRows converted_;
  float* projected_;
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

// The time loop: per thread, its rows and panels (reduced_part); per step, the input
// projection (a chunk ahead), h_{t-1} converted and multiplied by W_hh (into the
// projection, or apart when `recurrent_apart`: the GRU's reset gate multiplies that part
// alone), then `cell.step(ReducedStep, y)` from the element-wise part, make_cell(rows),
// and zeros on the rows past the batch alive at t. h_{t-1} is y's row of the step
// before, or h0; its width, W_hh's depth, is the weights' (the projected LSTM's P, else
// H). A team split over panels meets at a barrier after the products and after the
// element-wise part.
template <typename MakeCell>
void reduced_sequence(const SequenceShape& s, SequenceView<const float> x, const ReducedGatedWeights& w,
                      const float* h0, SequenceView<float> y, Index gates, bool recurrent_apart,
                      MakeCell&& make_cell) {
  const Index G = gates * s.hidden, H = w.weight_hh.depth();
  const PassPlan plan = plan_reduced_pass(s, gates, H, w.weight_hh.precision());
  // A team split over panels (or a pass on one thread) shares its buffers, each thread
  // writing its columns; a team split over the batch keeps its own.
  const bool over_panels = !plan.by_batch;
  PassBuffer<float> team_projection(over_panels ? reduced_chunk_steps(s, s.batch) * s.batch * G : 0);
  PassBuffer<float> team_apart(over_panels && recurrent_apart ? s.batch * G : 0);
  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const ReducedPart part = reduced_part(plan, s, w, thread, team);
    const Range rows = part.pass.rows;
    if (rows.size() == 0) return;
    const Index r0 = rows.begin;
    PassBuffer<float> own_projection(over_panels ? 0 : reduced_chunk_steps(s, rows.size()) * rows.size() * G);
    PassBuffer<float> own_apart(!over_panels && recurrent_apart ? rows.size() * G : 0);
    ReducedProjection projection(s, w.weight_ih, rows, part.panels,
                                 over_panels ? team_projection.data() : own_projection.data());
    float* const apart = over_panels ? team_apart.data() : own_apart.data();
    ReducedRows hidden(w.weight_hh.precision(), rows.size(), H);
    PreviousState<float> h_before(s, H);
    std::optional<decltype(make_cell(rows))> cell;
    if (part.runs_cells) cell.emplace(make_cell(rows));
    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      const Index live_end = part.pass.live_end(s.active(t));
      float* pre = projection.at(step, x);
      const StateRows<float> h_prev =
          h_before.at(step, {h0, H}, {y.at(s.time_before(step), 0), y.batch_stride}, {r0, live_end});
      for (Index b = r0; b < live_end; ++b) hidden.convert(b - r0, h_prev.row(b));
      float* recurrent = recurrent_apart ? apart : pre;
      reduced_product(w.weight_hh, part.panels, hidden, live_end - r0, {recurrent, G}, !recurrent_apart);
      if (over_panels) barrier.wait(team);  // no wait in a team of one
      if (cell) {
        cell->step(ReducedStep{step, t, rows, live_end, pre, recurrent, h_prev}, y);
        for (Index b = live_end; b < rows.end; ++b) std::fill_n(y.at(t, b), H, 0.0f);
      }
      if (over_panels) barrier.wait(team);
    }
  });
}

}  // namespace lstmcore
