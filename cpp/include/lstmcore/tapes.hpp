// Tapes: what a forward pass records for its backward, owned by the core.
//
// A tape allocates its buffers when it is made (cache-line aligned, uninitialised: the
// forward writes every element before the backward reads it); a failed allocation throws
// std::bad_alloc before any pass runs. The binding hands tapes to Python as objects and
// takes them back in backward, so Python never computes a tape's layout.
#pragma once

#include "lstmcore/gru.hpp"
#include "lstmcore/sequence.hpp"

namespace lstmcore {

// One GRU layer-direction's forward.
template <typename Scalar>
struct GruTape {
  GruTape(Index steps, Index batch, Index hidden)
      : steps(steps), batch(batch), hidden(hidden), gates(steps * batch * width()) {}
  Index width() const { return gru_tape_width(hidden); }

  Index steps, batch, hidden;  // T, B, H of the forward that wrote it
  PassBuffer<Scalar> gates;    // (T*B, 4H): r, z, n and m = h_{t-1} W_hn^T + b_hn
};

}  // namespace lstmcore
