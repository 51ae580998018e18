// The plain LSTM cell with activations chosen at run time and ONNX's clip
// (chosen_activation.hpp), gates in the order i, f, g, o:
//   a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh          (B, 4H)
//   i = gate(clip(a_i))  f = gate(clip(a_f))  g = candidate(clip(a_g))  o = gate(clip(a_o))
//   c_t = f * c_{t-1} + i * g
//   h_t = o * output(c_t)
// The tape holds a_t (with its bias), not the gates; backward recomputes them. A value at a
// time: this is the path of the options, LstmCell stays the fast one.
#pragma once

#include "lstmcore/chosen_activation.hpp"
#include "lstmcore/gate_clamp.hpp"
#include "lstmcore/gate_sums.hpp"
#include "lstmcore/lstm_options.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

template <typename Scalar>
class GeneralLstmCell {
 public:
  static constexpr Index kGates = 4;
  static constexpr Index kPeepholes = 0;

  GeneralLstmCell(const LstmOptions<Scalar>& options, Range units, Index hidden, const Scalar* bias,
                  Scalar* bias_grad = nullptr)
      : acts_(options.activations),
        clamps_(options.clamps, units.begin),
        sums_(bias_grad, units.size()),
        n_(units.size()),
        H_(hidden),
        bias_(bias) {}

  void forward(Scalar* pre, const Scalar* c_before, Scalar* c_after, Scalar* h_after) const {
    forward(pre, c_before, c_after, h_after, {0, n_});
  }

  // pre: gate k's pre-activations (without bias) at pre + k*H; replaced by a_t.
  void forward(Scalar* pre, const Scalar* c_before, Scalar* c_after, Scalar* h_after, Range part) const {
    const Index H = H_, n = n_;
    for (Index j = part.begin; j < part.end; ++j) {
      Scalar a[4], gate[4];
      for (int k = 0; k < 4; ++k) {
        a[k] = pre[k * H + j] + bias_[k * n + j];
        pre[k * H + j] = a[k];
        gate[k] = clamps_.value(
            k, j, activate_clipped(k == kClampCandidate ? acts_.candidate : acts_.gate, a[k], acts_.clip).value);
      }
      const Scalar c = gate[kClampForget] * c_before[j] + gate[kClampInput] * gate[kClampCandidate];
      c_after[j] = c;
      h_after[j] = gate[kClampOutput] * activate(acts_.output, c).value;
    }
  }

  // As LstmCell::backward, with `gate` the tape's a_t.
  void backward(const Scalar* gate, const Scalar* c_before, const Scalar* c_after, const Scalar* dy,
                const Scalar* dh, Scalar* dc, Scalar* da) {
    const Index H = H_;
    for (Index j = 0; j < n_; ++j) {
      Activated<Scalar> g[4];
      for (int k = 0; k < 4; ++k) {
        g[k] = activate_clipped(k == kClampCandidate ? acts_.candidate : acts_.gate, gate[k * H + j], acts_.clip);
        g[k].value = clamps_.value(k, j, g[k].value);
      }
      const Activated<Scalar> out = activate(acts_.output, c_after[j]);
      const Scalar i = g[kClampInput].value, f = g[kClampForget].value;
      const Scalar cand = g[kClampCandidate].value, o = g[kClampOutput].value;
      const Scalar dh_total = dy[j] + dh[j];
      const Scalar dc_total = dc[j] + dh_total * o * out.slope;
      const Scalar da_i = clamps_.gradient(kClampInput, j, dc_total * cand * g[kClampInput].slope);
      const Scalar da_f = clamps_.gradient(kClampForget, j, dc_total * c_before[j] * g[kClampForget].slope);
      const Scalar da_g = clamps_.gradient(kClampCandidate, j, dc_total * i * g[kClampCandidate].slope);
      const Scalar da_o = clamps_.gradient(kClampOutput, j, dh_total * out.value * g[kClampOutput].slope);
      sums_.write(da, H, j, da_i, da_f, da_g, da_o);
      dc[j] = dc_total * f;
    }
  }

 private:
  CellActivations acts_;
  GateClamps<Scalar> clamps_;
  GateSums<Scalar> sums_;
  Index n_, H_;
  const Scalar* bias_;
};

}  // namespace lstmcore
