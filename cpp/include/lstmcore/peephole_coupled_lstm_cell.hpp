// The coupled input-forget gate LSTM with peepholes (CIFG with peepholes, the variant
// Greff et al. 2017 study; ONNX's LSTM with input_forget=1 and P): the forget gate is
// 1 - i, so W_ih, W_hh hold 3 gate blocks i, g, o, and the two gates left see the cell
// through diagonal weights p_i, p_o (rows of a (2, H) array):
//   i = sigmoid(a_i + p_i * c_{t-1})   g = tanh(a_g)
//   c_t = (1 - i) * c_{t-1} + i * g = c_{t-1} + i * (g - c_{t-1})
//   o = sigmoid(a_o + p_o * c_t)        h_t = o * tanh(c_t)
// The tape holds i, g, o; clamps name input, candidate and output (not forget).
#pragma once

#include "lstmcore/activations.hpp"
#include "lstmcore/gate_clamp.hpp"
#include "lstmcore/gate_sums.hpp"
#include "lstmcore/lstm_options.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

template <typename Scalar>
class PeepholeCoupledLstmCell {
 public:
  static constexpr Index kGates = 3;
  static constexpr Index kPeepholes = 2;

  // As CoupledLstmCell; the peephole weights (2, H) and their gradient come from `options`.
  PeepholeCoupledLstmCell(const LstmOptions<Scalar>& options, Range units, Index hidden, const Scalar* bias,
                          Scalar* bias_grad = nullptr)
      : clamps_(options.clamps, units.begin),
        sums_(bias_grad, units.size()),
        n_(units.size()),
        H_(hidden),
        bias_(bias),
        peephole_(options.peephole + units.begin),
        peephole_grad_(options.peephole_grad ? options.peephole_grad + units.begin : nullptr) {}

  // One row, all of this thread's units ...
  void forward(Scalar* pre, const Scalar* c_before, Scalar* c_after, Scalar* h_after) const {
    forward(pre, c_before, c_after, h_after, {0, n_});
  }

  // ... or the units [part.begin, part.end) of them (a panel's, run while its gates are in L1).
  void forward(Scalar* pre, const Scalar* c_before, Scalar* c_after, Scalar* h_after, Range part) const {
    const Index H = H_, n = n_;
    const Scalar *bias = bias_, *peep = peephole_;
    for_each_unit<Scalar>(part.begin, part.end, [&](Index j, auto p) {
      using namespace Eigen::internal;
      using P = decltype(p);
      const P c_prev = ploadu<P>(c_before + j);
      const P a_i = pmadd(ploadu<P>(peep + j), c_prev, padd(ploadu<P>(pre + j), ploadu<P>(bias + j)));
      const P i = clamps_.value(kClampInput, j, gate_sigmoid(a_i));
      const P g =
          clamps_.value(kClampCandidate, j, gate_tanh(padd(ploadu<P>(pre + H + j), ploadu<P>(bias + n + j))));
      const P c = pmadd(i, psub(g, c_prev), c_prev);
      const P a_o =
          pmadd(ploadu<P>(peep + H + j), c, padd(ploadu<P>(pre + 2 * H + j), ploadu<P>(bias + 2 * n + j)));
      const P o = clamps_.value(kClampOutput, j, gate_sigmoid(a_o));
      pstoreu(pre + j, i);
      pstoreu(pre + H + j, g);
      pstoreu(pre + 2 * H + j, o);
      pstoreu(c_after + j, c);
      pstoreu(h_after + j, pmul(o, gate_tanh(c)));
    });
  }

  // As CoupledLstmCell::backward; also adds this row's share of the peephole gradient.
  void backward(const Scalar* gate, const Scalar* c_before, const Scalar* c_after, const Scalar* dy,
                const Scalar* dh, Scalar* dc, Scalar* da) {
    const Index H = H_;
    const Scalar* peep = peephole_;
    Scalar* peep_grad = peephole_grad_;
    for_each_unit<Scalar>(n_, [&](Index j, auto p) {
      using namespace Eigen::internal;
      using P = decltype(p);
      const P one = pset1<P>(Scalar(1));
      const P i = ploadu<P>(gate + j), g = ploadu<P>(gate + H + j), o = ploadu<P>(gate + 2 * H + j);
      const P c_prev = ploadu<P>(c_before + j), c = ploadu<P>(c_after + j);
      const P tanh_c = gate_tanh(c);
      const P dh_total = padd(ploadu<P>(dy + j), ploadu<P>(dh + j));
      const P da_o = clamps_.gradient(kClampOutput, j, pmul(pmul(dh_total, tanh_c), pmul(o, psub(one, o))));
      // c_t reaches the loss through h_t directly and through o's peephole.
      const P dc_total = pmadd(da_o, ploadu<P>(peep + H + j),
                               pmadd(pmul(dh_total, o), psub(one, pmul(tanh_c, tanh_c)), ploadu<P>(dc + j)));
      // i enters c_t through i * g and through the forget gate 1 - i.
      const P da_i = clamps_.gradient(kClampInput, j, pmul(pmul(dc_total, psub(g, c_prev)), pmul(i, psub(one, i))));
      const P da_g = clamps_.gradient(kClampCandidate, j, pmul(pmul(dc_total, i), psub(one, pmul(g, g))));
      sums_.write(da, H, j, da_i, da_g, da_o);
      // c_{t-1} reaches the loss through c_t and through i's peephole.
      pstoreu(dc + j, pmadd(da_i, ploadu<P>(peep + j), pmul(dc_total, psub(one, i))));
      if (peep_grad) {
        pstoreu(peep_grad + j, pmadd(da_i, c_prev, ploadu<P>(peep_grad + j)));
        pstoreu(peep_grad + H + j, pmadd(da_o, c, ploadu<P>(peep_grad + H + j)));
      }
    });
  }

 private:
  GateClamps<Scalar> clamps_;
  GateSums<Scalar> sums_;
  Index n_, H_;
  const Scalar* bias_;
  const Scalar* peephole_;
  Scalar* peephole_grad_;
};

}  // namespace lstmcore
