// What every gated recurrent pass shares: the shape of one layer-direction, the
// weights in PyTorch's layout, the gradients the backward pass accumulates, and the
// caller's sequence arrays.
//
// The core's own buffers (the tapes, gate gradients) are row-major with one row per
// (t, b), row index t*B + b ("time-major"); the caller's x, y, dy, dx are SequenceViews,
// in either layout.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

#include "lstmcore/eigen_types.hpp"
#include "lstmcore/row_view.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

struct SequenceShape {
  Index steps = 0;       // T
  Index batch = 0;       // B
  Index input = 0;       // I
  Index hidden = 0;      // H
  bool reverse = false;  // run from t = T-1 down to t = 0
  // (T,) rows alive at each time, non-increasing (a batch sorted longest first), or
  // nullptr when every sequence has all T steps.
  const Index* batch_sizes = nullptr;

  // The time index processed at step `step` of the pass.
  Index time_at(Index step) const { return reverse ? steps - 1 - step : step; }
  // The time index processed just before time `t` (only valid when t is not the first).
  Index previous_time(Index t) const { return reverse ? t + 1 : t - 1; }
  Index rows() const { return steps * batch; }
  // Rows [0, active(t)) of time t hold real steps; the rest are padding.
  Index active(Index t) const { return batch_sizes ? batch_sizes[t] : batch; }
  // Rows [active_after(step), active(time_at(step))) end their sequence at `step`.
  Index active_after(Index step) const { return step + 1 < steps ? active(time_at(step + 1)) : 0; }
  // The time processed before `step`; at step 0 its own time, whose rows all start from
  // the initial state.
  Index time_before(Index step) const { return step == 0 ? time_at(0) : time_at(step - 1); }
  // Rows [0, carried(step)) of time_at(step) continue from the state of the step before;
  // the others start from the initial state. Reversed with lengths, a sequence's run
  // starts at its own last step: the rows whose sequences end before time_before(step)
  // start there, while the longer ones carry on.
  Index carried(Index step) const {
    if (step == 0) return 0;
    return reverse && batch_sizes ? active(time_before(step)) : batch;
  }
};

// PyTorch's parameter layout: gate blocks of H rows stacked in weight_ih (G*H, I),
// weight_hh (G*H, H), bias_ih (G*H), bias_hh (G*H).
template <typename Scalar>
struct GatedWeights {
  const Scalar* weight_ih;
  const Scalar* weight_hh;
  const Scalar* bias_ih;
  const Scalar* bias_hh;
};

// Gradients of GatedWeights, same shapes; backward adds to them (+=), the caller zeroes.
// (dx, the gradient of a pass's input, is written instead, unless the backward is told
// to add to it: the second direction of a bidirectional layer.)
template <typename Scalar>
struct GatedGrads {
  Scalar* weight_ih;
  Scalar* weight_hh;
  Scalar* bias_ih;
  Scalar* bias_hh;
};

// A (T, B, width) sequence buffer in the caller's layout: row (t, b) at
// data + t * time_stride + b * batch_stride. Time-major (T, B, F) arrays have
// time_stride = B*F and batch_stride = F, batch-first (B, T, F) ones time_stride = F and
// batch_stride = T*F; one direction's slice of a bidirectional output starts at its
// column offset with F = 2H.
template <typename Scalar>
struct SequenceView {
  Scalar* data;
  Index time_stride;
  Index batch_stride;
  Scalar* at(Index t, Index b) const { return data + t * time_stride + b * batch_stride; }
  // Rows (t, b) for t >= t0 and b in `part` (of a batch of `batch`) as the output of a
  // product: evenly spaced when they are all of each step's rows and the steps follow
  // each other, else grouped by step.
  OutputRows<Scalar> output_rows(Index t0, Index batch, Range part) const {
    if (part.size() == batch && time_stride == batch * batch_stride) return {at(t0, 0), batch_stride};
    return {at(t0, part.begin), batch_stride, part.size(), time_stride};
  }
  // The same rows as a matrix operand (packed_product.hpp) ...
  RowView<std::remove_const_t<Scalar>> rows(Index t0, Index batch, Range part) const {
    const OutputRows<Scalar> out = output_rows(t0, batch, part);
    return {out.data, out.stride, out.group, out.group_stride};
  }
  // ... of all the batch's rows.
  RowView<std::remove_const_t<Scalar>> rows(Index t0, Index batch) const { return rows(t0, batch, {0, batch}); }
  operator SequenceView<const Scalar>() const { return {data, time_stride, batch_stride}; }
};

// One thread's share of a pass (PassPlan): its hidden units and its batch rows, and the
// inputs whose dx it computes (all of them when the pass is split over the batch).
struct PassPart {
  Range units;
  Range rows;
  Range inputs;
  // This part's rows alive at a time whose first `alive` rows are: [rows.begin, live_end).
  Index live_end(Index alive) const { return std::clamp(alive, rows.begin, rows.end); }
};

// Thread `thread` of `team`'s part: over units, slices aligned to `unit_align`; over the
// batch, contiguous rows holding about the same number of real steps each (a batch
// sorted longest first would otherwise give the first thread the long sequences).
inline PassPart pass_part(const PassPlan& plan, const SequenceShape& s, int thread, int team, Index unit_align) {
  if (!plan.by_batch) {
    return {split_range(s.hidden, thread, team, unit_align),
            {0, s.batch},
            split_range(s.input, thread, team, unit_align)};
  }
  const Range all_units{0, s.hidden}, all_inputs{0, s.input};
  if (!s.batch_sizes) return {all_units, split_range(s.batch, thread, team, 1), all_inputs};
  // Row b runs as many steps as there are times with more than b rows alive.
  const auto length = [&](Index b) {
    Index steps = 0;
    while (steps < s.steps && s.batch_sizes[steps] > b) ++steps;
    return steps;
  };
  Index total = 0;
  for (Index b = 0; b < s.batch; ++b) total += length(b);
  // The first row at which the steps before it reach part / team of the total.
  const auto cut = [&](int part) {
    if (part >= team) return s.batch;
    Index b = 0, before = 0;
    while (b < s.batch && before * team < total * part) before += length(b++);
    return b;
  };
  return {all_units, {cut(thread), cut(thread + 1)}, all_inputs};
}

// plan_pass for a pass of shape `s`. With lengths, the batch split only if every thread's
// rows (pass_part's cut) are a tile or more: where a few long sequences make up half the
// steps, their thread would run the tail alone with all the weights, slower than the
// unit split.
//
// While the cores are busy (load_sensor.hpp) and the thread count is the default, every
// barrier can cost a time slice: a pass runs on one thread, unless it is large enough to
// split over the batch, whose few barriers its work then outweighs.
inline PassPlan plan_pass(const SequenceShape& s, Index gates, Index scalar_bytes, Pass pass) {
  PassPlan plan = plan_pass(s.batch, s.input, s.hidden, gates, scalar_bytes, pass);
  const bool busy = plan.threads > 1 && adapt_to_busy_cores();
  if (busy) {
    const double flops =
        2.0 * s.rows() * (s.input + s.hidden) * gates * s.hidden * (pass == Pass::backward ? 2 : 1);
    plan.by_batch = flops >= kBusyMinFlopsToSplit && s.batch >= kMinBatchRowsPerThread * plan.threads;
  }
  for (int thread = 0; plan.by_batch && s.batch_sizes && thread < plan.threads; ++thread) {
    if (pass_part(plan, s, thread, plan.threads, 1).rows.size() < kMinBatchRowsPerThread) plan.by_batch = false;
  }
  if (busy && !plan.by_batch) plan.threads = 1;
  return plan;
}

// Rows of input projection a forward (every kernel) computes at a time, a chunk of steps
// ahead of the steps that read them: the chunk's gates (kChunkRows x K*H) are still in
// cache then, where those of all T*B rows at once came back from memory (LSTM forward,
// T=100, B=64, H=256: 4%; T=1000, B=8, H=128: 17%).
constexpr Index kChunkRows = 256;

// Zeroes `count` columns from `first` of rows [b0, b1) at time t: the rows a written
// (not accumulated) gradient gets no product for, past the batch alive at t.
template <typename Scalar>
void zero_rows(SequenceView<Scalar> v, Index t, Index b0, Index b1, Index first, Index count) {
  for (Index b = b0; b < b1; ++b) std::fill_n(v.at(t, b) + first, count, Scalar(0));
}

// A pass's (rows * width) buffer whose every element the pass writes before reading it:
// left uninitialised, because zeroing tens of MB per call is a measurable share of a pass.
// It starts on a cache line: threads write neighbouring column slices of its rows, and
// with the 16-byte alignment of new[] the line at each slice boundary bounced between
// their caches. It is taken from malloc and aligned by hand, as NumPy's arrays are:
// glibc's aligned allocation of blocks of tens of MB (the tapes) left the heap so that
// the next passes faulted fresh pages in. A failed allocation throws std::bad_alloc.
template <typename Scalar>
class PassBuffer {
 public:
  explicit PassBuffer(Index size) : raw_(std::malloc(bytes(size))) {
    if (!raw_) throw std::bad_alloc();
    const auto address = reinterpret_cast<std::uintptr_t>(raw_.get());
    data_ = reinterpret_cast<Scalar*>((address + kLine - 1) & ~std::uintptr_t{kLine - 1});
  }
  Scalar* data() { return data_; }
  const Scalar* data() const { return data_; }
  Scalar& operator[](Index k) { return data_[k]; }
  const Scalar& operator[](Index k) const { return data_[k]; }

 private:
  static constexpr std::size_t kLine = 64;
  static std::size_t bytes(Index size) {
    const auto count = static_cast<std::size_t>(std::max<Index>(size, 1));
    if (count > (SIZE_MAX - kLine) / sizeof(Scalar)) throw std::bad_alloc();
    return count * sizeof(Scalar) + kLine;
  }
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> raw_;
  Scalar* data_ = nullptr;
};

// Where a forward's input projection goes, a chunk of steps at a time (kChunkRows rows):
// the tape's rows of those steps, or without a tape one buffer of a chunk's rows, reused
// chunk after chunk. Built once per pass; every thread asks it for the same steps.
template <typename Scalar>
class ProjectionChunks {
 public:
  // width: the values of one row (the gate pre-activations); tape: (T*B, width), or nullptr;
  // rows_per_thread: the rows of a step that one thread projects (B, or its share of B
  // when the pass is split over the batch), which sets the chunk's steps.
  // used: false for a pass that projects elsewhere (interleaved_projection.hpp), which
  // then holds no buffer.
  ProjectionChunks(const SequenceShape& s, Index width, Scalar* tape, Index rows_per_thread, bool used = true)
      : s_(s),
        width_(width),
        chunk_(std::clamp<Index>(kChunkRows / std::max<Index>(rows_per_thread, 1), 1, s.steps)),
        tape_(tape),
        buffer_(tape || !used ? 0 : chunk_ * s.batch * width) {}

  // Whether the chunk that holds `step` starts there (its projection is due).
  bool starts(Index step) const { return step % chunk_ == 0; }
  // The steps of the chunk that holds `step`.
  Index steps(Index step) const { return std::min(chunk_, s_.steps - first_step(step)); }
  // The earliest time of that chunk: its rows are times first_time .. first_time + steps - 1.
  Index first_time(Index step) const {
    const Index first = first_step(step);
    return s_.reverse ? s_.time_at(first) - steps(step) + 1 : s_.time_at(first);
  }
  // The chunk's first row (B*width values per time step, in time order).
  Scalar* chunk(Index step) const { return tape_ ? tape_ + first_time(step) * s_.batch * width_ : buffer_.data(); }
  // The chunk's rows of the batch rows `part`, from column `column` on: the output of its
  // projection.
  OutputRows<Scalar> chunk_rows(Index step, Range part, Index column) const {
    return SequenceView<Scalar>{chunk(step) + column, s_.batch * width_, width_}.output_rows(0, s_.batch, part);
  }
  // The rows of `step`'s own time.
  Scalar* rows(Index step) const { return chunk(step) + (s_.time_at(step) - first_time(step)) * s_.batch * width_; }

 private:
  Index first_step(Index step) const { return step - step % chunk_; }

  const SequenceShape& s_;
  Index width_, chunk_;
  Scalar* tape_;
  // Written through the const accessors by every thread, each in its own columns.
  mutable PassBuffer<Scalar> buffer_;
};

}  // namespace lstmcore
