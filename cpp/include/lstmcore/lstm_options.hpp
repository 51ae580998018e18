// What the LSTM variants and the gate microscope add to a plain LSTM pass.
#pragma once

#include <array>

#include "lstmcore/chosen_activation.hpp"
#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

template <typename Scalar>
struct LstmOptions {
  // (Cell::kPeepholes, H): p_i, p_f, p_o for the peephole cell, p_i, p_o for the coupled
  // one with peepholes; none for the others.
  const Scalar* peephole = nullptr;
  Scalar* peephole_grad = nullptr;  // shaped as peephole, added to by backward
  // Ablation (gate_clamp.hpp): per gate input, forget, candidate, output, an (H,) vector
  // of held values (NaN = not held) or nullptr.
  std::array<const Scalar*, 4> clamps{};

  // Variational recurrent dropout (Gal and Ghahramani 2016): (B, H) mask, already scaled
  // by 1/(1-p), multiplying h_{t-1} where it enters the recurrent product; or nullptr.
  const Scalar* recurrent_mask = nullptr;

  // Zoneout (Krueger et al. 2017): each unit keeps its previous state with weight kappa,
  //   c_t = kappa_c * c_{t-1} + (1 - kappa_c) * c~_t,  h_t = kappa_h * h_{t-1} + (1 - kappa_h) * h~_t
  // where c~_t, h~_t are the cell's update. Training: (T*B, H) 0/1 masks zoneout_h,
  // zoneout_c; inference: both nullptr and kappa = zoneout_rate everywhere (the
  // expectation). zoneout_rate 0 and no masks: no zoneout.
  const Scalar* zoneout_h = nullptr;
  const Scalar* zoneout_c = nullptr;
  Scalar zoneout_rate = 0;
  Scalar* cell_updates = nullptr;  // tape (T*B, H): c~_t, written when zoneout is on

  // The general cell's activations and clip (general_lstm_cell.hpp); the others ignore them.
  CellActivations activations;

  bool zoneout() const { return zoneout_h != nullptr || zoneout_rate > 0; }
};

}  // namespace lstmcore
