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

namespace lstmcore {

// One LSTM layer-direction's forward (plain, peephole or coupled cell). Without a tape
// (inference) only c_n is kept; cell_updates only with zoneout.
template <typename Scalar>
struct LstmTape {
  LstmTape(Index steps, Index batch, Index hidden, Index gate_blocks, bool taped, bool zoneout)
      : steps(steps),
        batch(batch),
        hidden(hidden),
        gate_blocks(gate_blocks),
        taped(taped),
        zoneout(taped && zoneout),
        gates(taped ? steps * batch * gate_blocks * hidden : 0),
        cells(taped ? steps * batch * hidden : 0),
        cell_updates(this->zoneout ? steps * batch * hidden : 0),
        c_n(batch * hidden) {}

  Index steps, batch, hidden, gate_blocks;  // T, B, H, K of the forward that wrote it
  bool taped, zoneout;                      // which buffers below it holds
  PassBuffer<Scalar> gates;                 // (T*B, K*H) activated gates
  PassBuffer<Scalar> cells;                 // (T*B, H) c_t
  PassBuffer<Scalar> cell_updates;          // (T*B, H) c~_t before zoneout
  PassBuffer<Scalar> c_n;                   // (B, H) each sequence's last c_t
};

}  // namespace lstmcore

namespace lstmcore {

// One projected LSTM layer-direction's forward: h = (o * tanh(c)) W_hr^T. Without a tape
// (inference) only c_n is kept.
template <typename Scalar>
struct ProjectedLstmTape {
  ProjectedLstmTape(Index steps, Index batch, Index hidden, Index gate_blocks, bool taped)
      : steps(steps),
        batch(batch),
        hidden(hidden),
        gate_blocks(gate_blocks),
        taped(taped),
        gates(taped ? steps * batch * gate_blocks * hidden : 0),
        cells(taped ? steps * batch * hidden : 0),
        cell_out(taped ? steps * batch * hidden : 0),
        c_n(batch * hidden) {}

  Index steps, batch, hidden, gate_blocks;  // T, B, H, K of the forward that wrote it
  bool taped;                               // whether it holds gates, cells and cell_out
  PassBuffer<Scalar> gates;                 // (T*B, K*H) activated gates
  PassBuffer<Scalar> cells;                 // (T*B, H) c_t
  PassBuffer<Scalar> cell_out;              // (T*B, H) r_t = o * tanh(c_t), before the projection
  PassBuffer<Scalar> c_n;                   // (B, H) each sequence's last c_t
};

}  // namespace lstmcore
