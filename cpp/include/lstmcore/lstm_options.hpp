// What the LSTM variants and the gate microscope add to a plain LSTM pass.
#pragma once

#include <array>

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

template <typename Scalar>
struct LstmOptions {
  const Scalar* peephole = nullptr;       // (3, H): p_i, p_f, p_o (peephole cell only)
  Scalar* peephole_grad = nullptr;        // (3, H), added to by backward
  // Ablation (gate_clamp.hpp): per gate input, forget, candidate, output, an (H,) vector
  // of held values (NaN = not held) or nullptr.
  std::array<const Scalar*, 4> clamps{};
};

}  // namespace lstmcore
