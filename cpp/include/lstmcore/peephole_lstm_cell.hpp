// The peephole LSTM cell (Gers and Schmidhuber 2000): the input and forget gates see
// c_{t-1} and the output gate sees c_t through diagonal weights p_i, p_f, p_o (H each):
//   i = sigmoid(a_i + p_i * c_{t-1})   f = sigmoid(a_f + p_f * c_{t-1})   g = tanh(a_g)
//   c_t = f * c_{t-1} + i * g
//   o = sigmoid(a_o + p_o * c_t)        h_t = o * tanh(c_t)
// with a_t as in lstm_cell.hpp (gates i, f, g, o in W_ih, W_hh).
#pragma once

#include "lstmcore/activations.hpp"
#include "lstmcore/gate_clamp.hpp"
#include "lstmcore/gate_sums.hpp"
#include "lstmcore/lstm_options.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

template <typename Scalar>
class PeepholeLstmCell {
 public:
  static constexpr Index kGates = 4;
  static constexpr Index kPeepholes = 3;

  // As LstmCell; the peephole weights (3, H) and their gradient come from `options`.
  PeepholeLstmCell(const LstmOptions<Scalar>& options, Range units, Index hidden, const Scalar* bias,
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
      const P a_f = pmadd(ploadu<P>(peep + H + j), c_prev, padd(ploadu<P>(pre + H + j), ploadu<P>(bias + n + j)));
      const P i = clamps_.value(kClampInput, j, gate_sigmoid(a_i));
      const P f = clamps_.value(kClampForget, j, gate_sigmoid(a_f));
      const P g = clamps_.value(kClampCandidate, j,
                                gate_tanh(padd(ploadu<P>(pre + 2 * H + j), ploadu<P>(bias + 2 * n + j))));
      const P c = pmadd(f, c_prev, pmul(i, g));
      const P a_o =
          pmadd(ploadu<P>(peep + 2 * H + j), c, padd(ploadu<P>(pre + 3 * H + j), ploadu<P>(bias + 3 * n + j)));
      const P o = clamps_.value(kClampOutput, j, gate_sigmoid(a_o));
      pstoreu(pre + j, i);
      pstoreu(pre + H + j, f);
      pstoreu(pre + 2 * H + j, g);
      pstoreu(pre + 3 * H + j, o);
      pstoreu(c_after + j, c);
      pstoreu(h_after + j, pmul(o, gate_tanh(c)));
    });
  }

  // As LstmCell::backward; also adds this row's share of the peephole gradient.
  void backward(const Scalar* gate, const Scalar* c_before, const Scalar* c_after, const Scalar* dy,
                const Scalar* dh, Scalar* dc, Scalar* da) {
    const Index H = H_;
    const Scalar* peep = peephole_;
    Scalar* peep_grad = peephole_grad_;
    for_each_unit<Scalar>(n_, [&](Index j, auto p) {
      using namespace Eigen::internal;
      using P = decltype(p);
      const P one = pset1<P>(Scalar(1));
      const P i = ploadu<P>(gate + j), f = ploadu<P>(gate + H + j);
      const P g = ploadu<P>(gate + 2 * H + j), o = ploadu<P>(gate + 3 * H + j);
      const P c_prev = ploadu<P>(c_before + j), c = ploadu<P>(c_after + j);
      const P tanh_c = gate_tanh(c);
      const P dh_total = padd(ploadu<P>(dy + j), ploadu<P>(dh + j));
      const P da_o = clamps_.gradient(kClampOutput, j, pmul(pmul(dh_total, tanh_c), pmul(o, psub(one, o))));
      // c_t reaches the loss through h_t directly and through o's peephole.
      const P dc_total = pmadd(da_o, ploadu<P>(peep + 2 * H + j),
                               pmadd(pmul(dh_total, o), psub(one, pmul(tanh_c, tanh_c)), ploadu<P>(dc + j)));
      const P da_i = clamps_.gradient(kClampInput, j, pmul(pmul(dc_total, g), pmul(i, psub(one, i))));
      const P da_f = clamps_.gradient(kClampForget, j, pmul(pmul(dc_total, c_prev), pmul(f, psub(one, f))));
      const P da_g = clamps_.gradient(kClampCandidate, j, pmul(pmul(dc_total, i), psub(one, pmul(g, g))));
      sums_.write(da, H, j, da_i, da_f, da_g, da_o);
      // c_{t-1} reaches the loss through c_t and through the i and f peepholes.
      const P dc_prev = pmadd(da_f, ploadu<P>(peep + H + j), pmadd(da_i, ploadu<P>(peep + j), pmul(dc_total, f)));
      pstoreu(dc + j, dc_prev);
      if (peep_grad) {
        pstoreu(peep_grad + j, pmadd(da_i, c_prev, ploadu<P>(peep_grad + j)));
        pstoreu(peep_grad + H + j, pmadd(da_f, c_prev, ploadu<P>(peep_grad + H + j)));
        pstoreu(peep_grad + 2 * H + j, pmadd(da_o, c, ploadu<P>(peep_grad + 2 * H + j)));
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
