// The LSTM cells with activations chosen at run time and ONNX's clip (chosen_activation.hpp):
// the plain cell, and the peephole and coupled forms ONNX's LSTM expresses with P and
// input_forget. Gate blocks i, f, g, o (coupled: i, g, o, and f = 1 - i):
//   a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh          (B, K*H)
//   i = gate(clip(a_i + p_i * c_{t-1}))   f = gate(clip(a_f + p_f * c_{t-1}))   g = candidate(clip(a_g))
//   c_t = f * c_{t-1} + i * g
//   o = gate(clip(a_o + p_o * c_t))        h_t = o * output(c_t)
// the peephole terms only with Peepholes (rows p_i, p_f, p_o; coupled: p_i, p_o), as ONNX's
// operator, whose clip bounds the whole input of each activation, peephole included.
// The tape holds each gate's activation input (a_t with its bias and peephole term), not
// the gate; backward recomputes the gates. A value at a time: this is the path of the
// options, the fixed cells (lstm_cell.hpp, ...) stay the fast ones.
#pragma once

#include "lstmcore/chosen_activation.hpp"
#include "lstmcore/gate_clamp.hpp"
#include "lstmcore/gate_sums.hpp"
#include "lstmcore/lstm_options.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

template <typename Scalar, bool Peepholes, bool Coupled>
class GeneralLstmCellOf {
 public:
  static constexpr Index kGates = Coupled ? 3 : 4;
  static constexpr Index kPeepholes = Peepholes ? (Coupled ? 2 : 3) : 0;

  // As LstmCell; with Peepholes, the weights (kPeepholes, H) and their gradient come from
  // `options`.
  GeneralLstmCellOf(const LstmOptions<Scalar>& options, Range units, Index hidden, const Scalar* bias,
                    Scalar* bias_grad = nullptr)
      : acts_(options.activations),
        clamps_(options.clamps, units.begin),
        sums_(bias_grad, units.size()),
        n_(units.size()),
        H_(hidden),
        bias_(bias),
        peephole_(Peepholes ? options.peephole + units.begin : nullptr),
        peephole_grad_(Peepholes && options.peephole_grad ? options.peephole_grad + units.begin : nullptr) {}

  void forward(Scalar* pre, const Scalar* c_before, Scalar* c_after, Scalar* h_after) const {
    forward(pre, c_before, c_after, h_after, {0, n_});
  }

  // pre: gate k's pre-activations (without bias) at pre + k*H; replaced by the activation
  // inputs.
  void forward(Scalar* pre, const Scalar* c_before, Scalar* c_after, Scalar* h_after, Range part) const {
    const Index H = H_, n = n_;
    for (Index j = part.begin; j < part.end; ++j) {
      const Scalar c_prev = c_before[j];
      Scalar a[kGates];
      for (Index k = 0; k < kGates; ++k) a[k] = pre[k * H + j] + bias_[k * n + j];
      if constexpr (Peepholes) {
        a[kInput] += peephole_[j] * c_prev;
        if constexpr (!Coupled) a[kForget] += peephole_[H + j] * c_prev;
      }
      const Scalar i = gate_value(kClampInput, a[kInput], j);
      const Scalar g = gate_value(kClampCandidate, a[kCandidate], j);
      Scalar c;
      if constexpr (Coupled) {
        c = (Scalar(1) - i) * c_prev + i * g;
      } else {
        c = gate_value(kClampForget, a[kForget], j) * c_prev + i * g;
      }
      // o sees the new cell, so its input is complete only now.
      if constexpr (Peepholes) a[kOutput] += peephole_[kOutputPeephole * H + j] * c;
      const Scalar o = gate_value(kClampOutput, a[kOutput], j);
      for (Index k = 0; k < kGates; ++k) pre[k * H + j] = a[k];
      c_after[j] = c;
      h_after[j] = o * activate(acts_.output, c).value;
    }
  }

  // As LstmCell::backward, with `gate` the tape's activation inputs; with Peepholes, also
  // adds this row's share of the peephole gradient.
  void backward(const Scalar* gate, const Scalar* c_before, const Scalar* c_after, const Scalar* dy,
                const Scalar* dh, Scalar* dc, Scalar* da) {
    const Index H = H_;
    for (Index j = 0; j < n_; ++j) {
      const Activated<Scalar> i = gate_of(kClampInput, gate[kInput * H + j], j);
      const Activated<Scalar> g = gate_of(kClampCandidate, gate[kCandidate * H + j], j);
      const Activated<Scalar> o = gate_of(kClampOutput, gate[kOutput * H + j], j);
      const Activated<Scalar> out = activate(acts_.output, c_after[j]);
      const Scalar c_prev = c_before[j];
      const Scalar dh_total = dy[j] + dh[j];
      const Scalar da_o = clamps_.gradient(kClampOutput, j, dh_total * out.value * o.slope);
      Scalar dc_total = dc[j] + dh_total * o.value * out.slope;
      // c_t reaches the loss through h_t directly and through o's peephole.
      if constexpr (Peepholes) dc_total += da_o * peephole_[kOutputPeephole * H + j];
      const Scalar da_g = clamps_.gradient(kClampCandidate, j, dc_total * i.value * g.slope);
      Scalar da_i, dc_prev;
      if constexpr (Coupled) {
        // i enters c_t through i * g and through the forget gate 1 - i.
        da_i = clamps_.gradient(kClampInput, j, dc_total * (g.value - c_prev) * i.slope);
        dc_prev = dc_total * (Scalar(1) - i.value);
        sums_.write(da, H, j, da_i, da_g, da_o);
      } else {
        const Activated<Scalar> f = gate_of(kClampForget, gate[kForget * H + j], j);
        da_i = clamps_.gradient(kClampInput, j, dc_total * g.value * i.slope);
        const Scalar da_f = clamps_.gradient(kClampForget, j, dc_total * c_prev * f.slope);
        dc_prev = dc_total * f.value;
        sums_.write(da, H, j, da_i, da_f, da_g, da_o);
        if constexpr (Peepholes) {
          dc_prev += da_f * peephole_[H + j];
          if (peephole_grad_) peephole_grad_[H + j] += da_f * c_prev;
        }
      }
      if constexpr (Peepholes) {
        // c_{t-1} reaches the loss through c_t and through i's (and f's) peephole.
        dc_prev += da_i * peephole_[j];
        if (peephole_grad_) {
          peephole_grad_[j] += da_i * c_prev;
          peephole_grad_[kOutputPeephole * H + j] += da_o * c_after[j];
        }
      }
      dc[j] = dc_prev;
    }
  }

 private:
  // Where each gate's block lies on the tape and in the weights, and p_o's row.
  static constexpr Index kInput = 0, kForget = 1;
  static constexpr Index kCandidate = Coupled ? 1 : 2, kOutput = Coupled ? 2 : 3;
  static constexpr Index kOutputPeephole = Coupled ? 1 : 2;

  // The gate named `clamped` at activation input a: its value (the clamp where one holds
  // it) and its slope in a.
  Activated<Scalar> gate_of(int clamped, Scalar a, Index j) const {
    Activated<Scalar> g =
        activate_clipped(clamped == kClampCandidate ? acts_.candidate : acts_.gate, a, acts_.clip);
    g.value = clamps_.value(clamped, j, g.value);
    return g;
  }
  Scalar gate_value(int clamped, Scalar a, Index j) const { return gate_of(clamped, a, j).value; }

  CellActivations acts_;
  GateClamps<Scalar> clamps_;
  GateSums<Scalar> sums_;
  Index n_, H_;
  const Scalar* bias_;
  const Scalar* peephole_;
  Scalar* peephole_grad_;
};

// The four forms as the sequence kernels take a cell: a template of the scalar alone.
template <typename Scalar>
using GeneralLstmCell = GeneralLstmCellOf<Scalar, false, false>;
template <typename Scalar>
using GeneralPeepholeLstmCell = GeneralLstmCellOf<Scalar, true, false>;
template <typename Scalar>
using GeneralCoupledLstmCell = GeneralLstmCellOf<Scalar, false, true>;
template <typename Scalar>
using GeneralPeepholeCoupledLstmCell = GeneralLstmCellOf<Scalar, true, true>;

}  // namespace lstmcore
