// Tapes: what a forward pass records for its backward, owned by the core.
//
// A tape allocates its buffers when it is made (cache-line aligned, uninitialised: the
// forward writes every element before the backward reads it); a failed allocation throws
// std::bad_alloc before any pass runs. The binding hands tapes to Python as objects and
// takes them back in backward, so Python never computes a tape's layout.
#pragma once

#include "lstmcore/gru.hpp"
#include "lstmcore/layer_norm_lstm.hpp"
#include "lstmcore/rnn.hpp"
#include "lstmcore/sequence.hpp"

namespace lstmcore {

// One GRU layer-direction's forward.
template <typename Scalar>
struct GruTape {
  GruTape(Index steps, Index batch, Index hidden, bool reset_after)
      : steps(steps), batch(batch), hidden(hidden), reset_after(reset_after), gates(steps * batch * width()) {}
  Index width() const { return gru_tape_width(hidden); }

  Index steps, batch, hidden;  // T, B, H of the forward that wrote it
  bool reset_after;            // the forward's form, which its backward must take
  PassBuffer<Scalar> gates;    // (T*B, 4H): r, z, n and m = h_{t-1} W_hn^T + b_hn, or r * h_{t-1}
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

namespace lstmcore {

// One layer-normalised LSTM layer-direction's forward. Without a tape (inference) only c_n
// is kept.
template <typename Scalar>
struct LayerNormLstmTape {
  LayerNormLstmTape(Index steps, Index batch, Index hidden, bool taped)
      : steps(steps),
        batch(batch),
        hidden(hidden),
        taped(taped),
        gates(taped ? steps * batch * 4 * hidden : 0),
        cells(taped ? steps * batch * hidden : 0),
        input_norm(taped ? steps * batch * 4 * hidden : 0),
        hidden_norm(taped ? steps * batch * 4 * hidden : 0),
        cell_norm(taped ? steps * batch * hidden : 0),
        inv_std(taped ? steps * batch * 3 : 0),
        c_n(batch * hidden) {}

  // The normalisation buffers as the kernels take them; all null without a tape.
  LayerNormTape<Scalar> norms() {
    if (!taped) return {};
    return {input_norm.data(), hidden_norm.data(), cell_norm.data(), inv_std.data()};
  }

  Index steps, batch, hidden;      // T, B, H of the forward that wrote it
  bool taped;                      // whether it holds more than c_n
  PassBuffer<Scalar> gates;        // (T*B, 4H) activated gates
  PassBuffer<Scalar> cells;        // (T*B, H) c_t
  PassBuffer<Scalar> input_norm;   // (T*B, 4H) normalised x W_ih^T
  PassBuffer<Scalar> hidden_norm;  // (T*B, 4H) normalised h W_hh^T
  PassBuffer<Scalar> cell_norm;    // (T*B, H) normalised c_t
  PassBuffer<Scalar> inv_std;      // (T*B, 3) 1/std of the input, hidden and cell rows
  PassBuffer<Scalar> c_n;          // (B, H) each sequence's last c_t
};

}  // namespace lstmcore

namespace lstmcore {

// One RNN layer-direction's forward. With tanh or relu, its sizes only: backward derives
// act'(a) from y, the forward's output (rnn.hpp). With a chosen activation or clip
// (ChosenNonlinearity), also the pre-activations.
template <typename Scalar>
struct RnnTape {
  RnnTape(Index steps, Index batch, Index hidden, bool chosen)
      : steps(steps), batch(batch), hidden(hidden), chosen(chosen), pre(chosen ? steps * batch * hidden : 0) {}

  Index steps, batch, hidden;  // T, B, H of the forward that wrote it
  bool chosen;                 // whether it holds pre
  PassBuffer<Scalar> pre;      // (T*B, H) a_t = x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
};

}  // namespace lstmcore
