// The plain LSTM cell, PyTorch's formulation, gates in the order i, f, g, o:
//   a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh          (B, 4H)
//   i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)
//   c_t = f * c_{t-1} + i * g
//   h_t = o * tanh(c_t)
// A clamped gate (gate_clamp.hpp) replaces its activation and passes no gradient.
#pragma once

#include "lstmcore/activations.hpp"
#include "lstmcore/gate_clamp.hpp"
#include "lstmcore/gate_sums.hpp"
#include "lstmcore/lstm_options.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

template <typename Scalar>
class LstmCell {
 public:
  static constexpr Index kGates = 4;
  static constexpr Index kPeepholes = 0;

  // One thread's view: hidden units `units`; bias (4, n) is b_ih + b_hh of those units
  // (forward); backward adds each row's gate gradients to bias_grad (4, n) if given.
  LstmCell(const LstmOptions<Scalar>& options, Range units, Index hidden, const Scalar* bias,
           Scalar* bias_grad = nullptr)
      : clamps_(options.clamps, units.begin),
        sums_(bias_grad, units.size()),
        n_(units.size()),
        H_(hidden),
        bias_(bias) {}

  // One row. pre: gate k's pre-activations (without bias) at pre + k*H; replaced by the
  // gates. c_before: c_{t-1}; c_after, h_after: c_t, h_t (written). All of this thread's
  // units ...
  void forward(Scalar* pre, const Scalar* c_before, Scalar* c_after, Scalar* h_after) const {
    forward(pre, c_before, c_after, h_after, {0, n_});
  }

  // ... or the units [part.begin, part.end) of them (a panel's, run while its gates are in L1).
  void forward(Scalar* pre, const Scalar* c_before, Scalar* c_after, Scalar* h_after, Range part) const {
    const Index H = H_, n = n_;
    const Scalar* bias = bias_;
    for_each_unit<Scalar>(part.begin, part.end, [&](Index j, auto p) {
      using namespace Eigen::internal;
      using P = decltype(p);
      const P i = clamps_.value(kClampInput, j, gate_sigmoid(padd(ploadu<P>(pre + j), ploadu<P>(bias + j))));
      const P f =
          clamps_.value(kClampForget, j, gate_sigmoid(padd(ploadu<P>(pre + H + j), ploadu<P>(bias + n + j))));
      const P g = clamps_.value(kClampCandidate, j,
                                gate_tanh(padd(ploadu<P>(pre + 2 * H + j), ploadu<P>(bias + 2 * n + j))));
      const P o = clamps_.value(kClampOutput, j,
                                gate_sigmoid(padd(ploadu<P>(pre + 3 * H + j), ploadu<P>(bias + 3 * n + j))));
      const P c = pmadd(f, ploadu<P>(c_before + j), pmul(i, g));
      pstoreu(pre + j, i);
      pstoreu(pre + H + j, f);
      pstoreu(pre + 2 * H + j, g);
      pstoreu(pre + 3 * H + j, o);
      pstoreu(c_after + j, c);
      pstoreu(h_after + j, pmul(o, gate_tanh(c)));
    });
  }

  // One row. gate: the tape's gates (stride H); dy: gradient of h_t from above; dh, dc:
  // running gradients of h_t and c_t in, dh partial (set by the caller's product) and
  // dc_{t-1} out; da: gradients of the 4 pre-activations (written, stride H).
  void backward(const Scalar* gate, const Scalar* c_before, const Scalar* c_after, const Scalar* dy,
                const Scalar* dh, Scalar* dc, Scalar* da) {
    const Index H = H_;
    for_each_unit<Scalar>(n_, [&](Index j, auto p) {
      using namespace Eigen::internal;
      using P = decltype(p);
      const P one = pset1<P>(Scalar(1));
      const P i = ploadu<P>(gate + j), f = ploadu<P>(gate + H + j);
      const P g = ploadu<P>(gate + 2 * H + j), o = ploadu<P>(gate + 3 * H + j);
      const P tanh_c = gate_tanh(ploadu<P>(c_after + j));
      const P dh_total = padd(ploadu<P>(dy + j), ploadu<P>(dh + j));
      // dc_total = dc + dh_total * o * (1 - tanh(c)^2)
      const P dc_total = pmadd(pmul(dh_total, o), psub(one, pmul(tanh_c, tanh_c)), ploadu<P>(dc + j));
      const P da_i = clamps_.gradient(kClampInput, j, pmul(pmul(dc_total, g), pmul(i, psub(one, i))));
      const P da_f =
          clamps_.gradient(kClampForget, j, pmul(pmul(dc_total, ploadu<P>(c_before + j)), pmul(f, psub(one, f))));
      const P da_g = clamps_.gradient(kClampCandidate, j, pmul(pmul(dc_total, i), psub(one, pmul(g, g))));
      const P da_o = clamps_.gradient(kClampOutput, j, pmul(pmul(dh_total, tanh_c), pmul(o, psub(one, o))));
      sums_.write(da, H, j, da_i, da_f, da_g, da_o);
      pstoreu(dc + j, pmul(dc_total, f));
    });
  }

 private:
  GateClamps<Scalar> clamps_;
  GateSums<Scalar> sums_;
  Index n_, H_;
  const Scalar* bias_;
};

}  // namespace lstmcore
