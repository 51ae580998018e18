// The weight gradients of a gated layer after its backward time loop:
//   dW_ih += da_input^T x        dW_hh += da_hidden^T h_{t-1}
// over all steps, for the gate rows [r0, r0 + nr) that one thread owns.
#pragma once

#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"

namespace lstmcore {

// da_input, da_hidden (T*B, G): the gradients of the gate pre-activations on the input
// side and on the recurrent side, time-major: the same array for the LSTM family, two for
// the GRU and the layer-norm LSTM. x (T, B, I); h_{t-1} is `h_first` (B, width) for the
// first processed time and, for the others, `h_later` one step earlier in processing
// order, so the pairs are aligned row ranges of da, x and h_later (padding rows of
// h_later and da are zero). With one da, both
// products share each packed block of da^T (transposed_products).
template <typename Scalar>
void add_gate_weight_grads(const SequenceShape& s, const Scalar* da_input, const Scalar* da_hidden, Index G,
                           Index r0, Index nr, SequenceView<const Scalar> x, const Scalar* h_first,
                           SequenceView<const Scalar> h_later, Index width, Scalar* grad_ih, Scalar* grad_hh,
                           ProductWorkspace<Scalar>& workspace) {
  const Index B = s.batch, I = s.input;
  // The rows of times [time, time + rows / B) of both products.
  const auto add = [&](Index time, Index rows, RowView<Scalar> x_rows, RowView<Scalar> h_rows) {
    const TransposedTarget<Scalar> to_ih{x_rows, I, grad_ih + r0 * I, I};
    const TransposedTarget<Scalar> to_hh{h_rows, width, grad_hh + r0 * width, width};
    if (da_input == da_hidden) {
      transposed_products<Scalar>({da_input + time * B * G, G}, r0, nr, rows, {to_ih, to_hh}, true, workspace);
      return;
    }
    transposed_products<Scalar>({da_input + time * B * G, G}, r0, nr, rows, {to_ih}, true, workspace);
    transposed_products<Scalar>({da_hidden + time * B * G, G}, r0, nr, rows, {to_hh}, true, workspace);
  };
  const Index first = s.time_at(0);
  add(first, B, x.rows(first, B), {h_first, width});
  if (s.steps > 1) {
    const Index d_start = s.reverse ? 0 : 1;  // the first time whose h_{t-1} is in h_later
    const Index h_start = s.reverse ? 1 : 0;
    add(d_start, (s.steps - 1) * B, x.rows(d_start, B), h_later.rows(h_start, B));
  }
  // Reversed with lengths, a sequence shorter than T starts at its own last time from
  // h_first; the product above paired that time with h_later's padding row (zero), so
  // the pair is added here, one row of the batch each.
  for (Index step = 1; step < s.steps && s.batch_sizes; ++step) {
    const Index t = s.time_at(step);
    for (Index b = s.carried(step); b < s.active(t); ++b) {
      const Scalar* da = da_hidden + (t * B + b) * G + r0;
      const Scalar* h = h_first + b * width;
      for (Index g = 0; g < nr; ++g) {
        Scalar* grad = grad_hh + (r0 + g) * width;
        for (Index k = 0; k < width; ++k) grad[k] += da[g] * h[k];
      }
    }
  }
}

}  // namespace lstmcore
