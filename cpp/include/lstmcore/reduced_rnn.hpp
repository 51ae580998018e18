// The vanilla RNN's forward with reduced-precision weights (reduced_sequence.hpp):
//   h_t = act(x W_ih^T + h_{t-1} W_hh^T + b_ih + b_hh),  act = tanh or relu (rnn.hpp).
#pragma once

#include "lstmcore/reduced_sequence.hpp"
#include "lstmcore/rnn.hpp"

namespace lstmcore {

// One thread's element-wise part; bias (H,): b_ih + b_hh.
template <typename Nonlinearity>
class ReducedRnnRows {
 public:
  ReducedRnnRows(Index hidden, const float* bias) : H_(hidden), bias_(bias) {}

  void step(const ReducedStep& at, SequenceView<float> y) const {
    for (Index b = at.rows.begin; b < at.live_end; ++b) {
      const float* pre = at.pre + (b - at.rows.begin) * H_;
      float* h_t = y.at(at.t, b);
      const float* bias = bias_;
      for_each_unit<float>(H_, [&](Index j, auto p) {
        using namespace Eigen::internal;
        using P = decltype(p);
        pstoreu(h_t + j, Nonlinearity::apply(padd(ploadu<P>(pre + j), ploadu<P>(bias + j))));
      });
    }
  }

 private:
  Index H_;
  const float* bias_;
};

// x (T, B, I), h0 (B, H), y (T, B, H) written: as rnn_forward without a tape.
template <typename Nonlinearity>
void reduced_rnn_forward(const SequenceShape& s, SequenceView<const float> x, const ReducedGatedWeights& w,
                         const float* h0, SequenceView<float> y) {
  const Index H = s.hidden;
  PassBuffer<float> bias(H);
  fused_gate_bias<float>(w.biases(), 1, 1, H, {0, H}, bias.data());
  reduced_sequence(s, x, w, h0, y, 1, false, [&](Range) { return ReducedRnnRows<Nonlinearity>(H, bias.data()); });
}

}  // namespace lstmcore
