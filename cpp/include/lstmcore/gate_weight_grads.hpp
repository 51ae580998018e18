// The weight gradients of a gated layer after its backward time loop:
//   dW_ih += da^T x        dW_hh += da^T h_{t-1}
// over all steps, for the gate rows [r0, r0 + nr) that one thread owns.
#pragma once

#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"

namespace lstmcore {

// da (T*B, G) the gate gradients, time-major; x (T, B, I); h_{t-1} is `h_first` (B, width)
// for the first processed time and, for the others, `h_later` one step earlier in
// processing order, so the pairs are aligned row ranges of da, x and h_later. Both
// products share each packed block of da^T (transposed_products).
template <typename Scalar>
void add_gate_weight_grads(const SequenceShape& s, const Scalar* da, Index G, Index r0, Index nr,
                           SequenceView<const Scalar> x, const Scalar* h_first, SequenceView<const Scalar> h_later,
                           Index width, Scalar* grad_ih, Scalar* grad_hh, ProductWorkspace<Scalar>& workspace) {
  const Index B = s.batch, I = s.input;
  const Index first = s.time_at(0);
  transposed_products<Scalar>({da + first * B * G, G}, r0, nr, B,
                              {{x.rows(first, B), I, grad_ih + r0 * I, I},
                               {{h_first, width}, width, grad_hh + r0 * width, width}},
                              true, workspace);
  if (s.steps > 1) {
    const Index d_start = s.reverse ? 0 : 1;  // the first time whose h_{t-1} is in h_later
    const Index h_start = s.reverse ? 1 : 0;
    transposed_products<Scalar>({da + d_start * B * G, G}, r0, nr, (s.steps - 1) * B,
                                {{x.rows(d_start, B), I, grad_ih + r0 * I, I},
                                 {h_later.rows(h_start, B), width, grad_hh + r0 * width, width}},
                                true, workspace);
  }
}

}  // namespace lstmcore
