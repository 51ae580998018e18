// dx = da W_ih in a backward pass, for one thread's slice of the inputs, computed one of
// two ways:
// - inside the time loop, dx_t = da_t W_ih step by step, while the step's gate gradients
//   are still in cache (one product after the loop read the whole tape back from memory);
// - when this thread's slice of W_ih, packed, is too big to stay near its core (over
//   kPerStepBytes; float32 on two threads split over units: from I=H=768 for the 4 gate
//   blocks of an LSTM, about I=H=850 for the 3 of a GRU or coupled LSTM), as one product over all
//   steps after the loop. Step by step, the whole slice streamed from L3 or memory once
//   a step; after the loop, once per block of rows, which made the backward at I=H=1024
//   clearly faster.
// With lengths, the padding rows' gate gradients are zeros (every kernel writes them so),
// and so are their rows of dx either way.
#pragma once

#include <algorithm>

#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

// A thread's packed slice of W_ih up to which dx is computed step by step. Measured on
// 2 threads (float32, backward): step by step was faster with 2 MB a thread (I=H=512;
// I=1024 H=256), after the loop with 4.5 MB (I=H=768) and 8 MB (I=H=1024).
constexpr Index kPerStepBytes = Index(4) << 20;

template <typename Scalar>
class InputGradient {
 public:
  // weight_ih (G, I) row-major; this thread's columns of it (`inputs`), packed once per pass.
  InputGradient(const Scalar* weight_ih, Index G, Index I, Range inputs)
      : inputs_(inputs),
        G_(G),
        packed_(PanelLayout<Scalar>::size(inputs_.size(), G)),
        per_step_(computes_per_step(inputs.size(), G)) {
    if (inputs_.size() > 0) pack_columns(weight_ih + inputs_.begin, I, inputs_.size(), G, packed_.data());
  }

  // Whether a thread with `inputs` of them computes dx step by step (or after the loop).
  static bool computes_per_step(Index inputs, Index G) {
    const Index packed_bytes = PanelLayout<Scalar>::size(inputs, G) * Index(sizeof(Scalar));
    return packed_bytes <= kPerStepBytes;
  }

  // dx at time t, this thread's inputs, for the batch rows `rows` of which those before
  // `live_end` hold real steps: da_t (their rows of the gate gradients, from rows.begin)
  // W_ih, written (the padding rows zeroed) or, with `accumulate`, added. Nothing when dx
  // is left for after the loop.
  void step(RowView<Scalar> da_t, Range rows, Index live_end, SequenceView<Scalar> dx, Index t,
            bool accumulate) const {
    if (inputs_.size() == 0 || !per_step_) return;
    if (live_end > rows.begin) {
      multiply_rows(da_t, live_end - rows.begin, G_, packed_.data(), inputs_.size(),
                    dx.at(t, rows.begin) + inputs_.begin, dx.batch_stride, accumulate);
    }
    if (!accumulate) zero_rows(dx, t, live_end, rows.end, inputs_.begin, inputs_.size());
  }

  // After the loop, once every thread's gate gradients are written (past a barrier): dx
  // for every step, this thread's inputs, batch rows `rows`, from d_gates (T*B, G)
  // time-major. Nothing when dx was computed step by step.
  void after_loop(const Scalar* d_gates, const SequenceShape& s, Range rows, SequenceView<Scalar> dx,
                  bool accumulate, ProductWorkspace<Scalar>& workspace) const {
    if (inputs_.size() == 0 || per_step_ || rows.size() == 0) return;
    const SequenceView<const Scalar> gates{d_gates, s.batch * G_, G_};
    OutputRows<Scalar> out = dx.output_rows(0, s.batch, rows);
    out.data += inputs_.begin;
    packed_products<Scalar>(gates.rows(0, s.batch, rows), s.steps * rows.size(), G_, packed_.data(), 0,
                            inputs_.size(), out, 0, 1, accumulate, workspace);
  }

 private:
  Range inputs_;
  Index G_;
  PackedBuffer<Scalar> packed_;
  bool per_step_;
};

}  // namespace lstmcore
