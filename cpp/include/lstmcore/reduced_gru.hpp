// The GRU's forward with reduced-precision weights (reduced_sequence.hpp), PyTorch's form
// with the reset gate after W_hn (gru.hpp's ResetAfter, the default):
//   r = sigmoid(x W_ir^T + h W_hr^T + b_ir + b_hr),  z likewise,
//   n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),  h_t = n + z * (h_{t-1} - n).
#pragma once

#include "lstmcore/activations.hpp"
#include "lstmcore/reduced_sequence.hpp"

namespace lstmcore {

// One thread's element-wise part; bias (4, H): b_ir + b_hr, b_iz + b_hz, b_in, b_hn.
class ReducedGruRows {
 public:
  ReducedGruRows(Index hidden, const float* bias) : H_(hidden), bias_(bias) {}

  void step(const ReducedStep& at, SequenceView<float> y) const {
    const Index H = H_, G = 3 * H;
    for (Index b = at.rows.begin; b < at.live_end; ++b) {
      const float* pre = at.pre + (b - at.rows.begin) * G;
      const float* rec = at.recurrent + (b - at.rows.begin) * G;
      const float* h_old = at.h_prev.row(b);
      float* h_t = y.at(at.t, b);
      const float* bias = bias_;
      for_each_unit<float>(H, [&](Index j, auto p) {
        using namespace Eigen::internal;
        using P = decltype(p);
        const P r = gate_sigmoid(padd(padd(ploadu<P>(pre + j), ploadu<P>(rec + j)), ploadu<P>(bias + j)));
        const P z =
            gate_sigmoid(padd(padd(ploadu<P>(pre + H + j), ploadu<P>(rec + H + j)), ploadu<P>(bias + H + j)));
        const P m = padd(ploadu<P>(rec + 2 * H + j), ploadu<P>(bias + 3 * H + j));
        const P n = gate_tanh(pmadd(r, m, padd(ploadu<P>(pre + 2 * H + j), ploadu<P>(bias + 2 * H + j))));
        pstoreu(h_t + j, pmadd(z, psub(ploadu<P>(h_old + j), n), n));
      });
    }
  }

 private:
  Index H_;
  const float* bias_;
};

// x (T, B, I), h0 (B, H), y (T, B, H) written: as gru_forward without a tape.
inline void reduced_gru_forward(const SequenceShape& s, SequenceView<const float> x, const ReducedGatedWeights& w,
                                const float* h0, SequenceView<float> y) {
  const Index H = s.hidden;
  PassBuffer<float> bias(4 * H);
  fused_gate_bias<float>(w.biases(), 3, 2, H, {0, H}, bias.data());
  std::copy_n(w.bias_hh + 2 * H, H, bias.data() + 3 * H);
  reduced_sequence(s, x, w, h0, y, 3, true, [&](Range) { return ReducedGruRows(H, bias.data()); });
}

}  // namespace lstmcore
