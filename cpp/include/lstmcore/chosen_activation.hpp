// Activations chosen at run time, with ONNX's semantics (the LSTM/GRU/RNN operators'
// activations, activation_alpha, activation_beta and clip), for the cells' non-default
// path (general_lstm_cell.hpp, GeneralGruActivations in gru.hpp, ChosenNonlinearity in
// rnn.hpp). The default cells keep their fixed, vectorized sigmoid and tanh: a switch per
// value costs what only a user who asked for other activations should pay.
//
// The non-default cells keep each gate's pre-activation on the tape, not its value: the
// clip's zero gradient needs to know where it held a value, which the activated value
// cannot always tell (sigmoid(c) and sigmoid(c - ulp) round alike).
#pragma once

#include <cmath>

#include "lstmcore/activations.hpp"

namespace lstmcore {

enum class ActivationKind { sigmoid, tanh, relu, hard_sigmoid, linear, softsign };

// One activation; alpha, beta: hard_sigmoid's min(max(alpha * x + beta, 0), 1).
struct Activation {
  ActivationKind kind = ActivationKind::sigmoid;
  double alpha = 0.2, beta = 0.5;
};

// The activations of one cell and ONNX's clip (0: none).
struct CellActivations {
  Activation gate{ActivationKind::sigmoid};    // LSTM i, f, o; GRU r, z
  Activation candidate{ActivationKind::tanh};  // LSTM g; GRU n
  Activation output{ActivationKind::tanh};     // LSTM: h = o * output(c_t), never clipped
  double clip = 0;
};

template <typename Scalar>
struct Activated {
  Scalar value, slope;  // f(x) and df/dx
};

// f(x) and its derivative; NaN stays NaN.
template <typename Scalar>
Activated<Scalar> activate(const Activation& f, Scalar x) {
  switch (f.kind) {
    case ActivationKind::sigmoid: {
      const Scalar s = gate_sigmoid(x);
      return {s, s * (Scalar(1) - s)};
    }
    case ActivationKind::tanh: {
      const Scalar t = gate_tanh(x);
      return {t, Scalar(1) - t * t};
    }
    case ActivationKind::relu:
      return {gate_relu(x), x > Scalar(0) ? Scalar(1) : Scalar(0)};
    case ActivationKind::hard_sigmoid: {
      const Scalar line = Scalar(f.alpha) * x + Scalar(f.beta);
      const Scalar value = line < Scalar(0) ? Scalar(0) : line > Scalar(1) ? Scalar(1) : line;
      return {value, line > Scalar(0) && line < Scalar(1) ? Scalar(f.alpha) : Scalar(0)};
    }
    case ActivationKind::linear:
      return {x, Scalar(1)};
    case ActivationKind::softsign: {
      const Scalar denominator = Scalar(1) + std::abs(x);
      return {x / denominator, Scalar(1) / (denominator * denominator)};
    }
  }
  return {x, Scalar(1)};
}

// f(clip(a)) and its derivative in a: zero where the clip holds a at -c or c (ONNX
// clips the input of every gate activation).
template <typename Scalar>
Activated<Scalar> activate_clipped(const Activation& f, Scalar a, double clip) {
  if (clip > 0) {
    const Scalar c = Scalar(clip);
    if (a > c || a < -c) return {activate(f, a > c ? c : -c).value, Scalar(0)};
  }
  return activate(f, a);
}

}  // namespace lstmcore
