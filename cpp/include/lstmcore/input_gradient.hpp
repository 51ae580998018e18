// dx_t = da_t W_ih inside a backward's time loop, for one thread's slice of the inputs:
// the step's gate gradients are still in cache there, where one product after the loop
// read the whole tape back from memory.
#pragma once

#include <algorithm>

#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

template <typename Scalar>
class InputGradient {
 public:
  // weight_ih (G, I) row-major; this thread's columns of it (`inputs`), packed once per pass.
  InputGradient(const Scalar* weight_ih, Index G, Index I, Range inputs)
      : inputs_(inputs),
        G_(G),
        packed_(PanelLayout<Scalar>::size(inputs_.size(), G)) {
    if (inputs_.size() > 0) pack_columns(weight_ih + inputs_.begin, I, inputs_.size(), G, packed_.data());
  }

  // dx at time t, this thread's inputs, for the batch rows `rows` of which those before
  // `live_end` hold real steps: da_t (their rows of the gate gradients, from rows.begin)
  // W_ih, written (the padding rows zeroed) or, with `accumulate`, added.
  void step(RowView<Scalar> da_t, Range rows, Index live_end, SequenceView<Scalar> dx, Index t,
            bool accumulate) const {
    if (inputs_.size() == 0) return;
    if (live_end > rows.begin) {
      multiply_rows(da_t, live_end - rows.begin, G_, packed_.data(), inputs_.size(),
                    dx.at(t, rows.begin) + inputs_.begin, dx.batch_stride, accumulate);
    }
    if (!accumulate) zero_rows(dx, t, live_end, rows.end, inputs_.begin, inputs_.size());
  }

 private:
  Range inputs_;
  Index G_;
  PackedBuffer<Scalar> packed_;
};

}  // namespace lstmcore
