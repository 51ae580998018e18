// Ablation: a gate held at a given value instead of its activation.
//
// A clamp is an (H,) vector per gate; a NaN entry leaves that unit's gate alone, so one
// mechanism serves "clamp the whole gate to a constant" and "clamp these units".
// A clamped gate is a constant: its pre-activation gets no gradient.
#pragma once

#include <array>
#include <type_traits>

#include "lstmcore/activations.hpp"
#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

// Gates a clamp can name, whatever the cell stores on its tape.
enum ClampedGate { kClampInput = 0, kClampForget = 1, kClampCandidate = 2, kClampOutput = 3 };

template <typename Scalar>
class GateClamps {
 public:
  GateClamps() = default;
  // `all` holds (H,) vectors or nullptr; this view starts at unit `first_unit`.
  GateClamps(const std::array<const Scalar*, 4>& all, Index first_unit) {
    for (int gate = 0; gate < 4; ++gate) own_[gate] = all[gate] ? all[gate] + first_unit : nullptr;
  }

  // The gate's value for units [j, j + lanes): the clamp where set, else `activated`.
  template <typename P>
  EIGEN_ALWAYS_INLINE P value(int gate, Index j, const P& activated) const {
    const Scalar* clamp = own_[gate];
    if (!clamp) return activated;
    const P held = Eigen::internal::ploadu<P>(clamp + j);
    if constexpr (std::is_floating_point_v<P>) {
      return held != held ? activated : held;
    } else {
      return Eigen::internal::pselect(Eigen::internal::pcmp_eq(held, held), held, activated);
    }
  }

  // The gradient of the gate's pre-activation: zero where the gate is clamped.
  template <typename P>
  EIGEN_ALWAYS_INLINE P gradient(int gate, Index j, const P& d_pre) const {
    const Scalar* clamp = own_[gate];
    if (!clamp) return d_pre;
    const P held = Eigen::internal::ploadu<P>(clamp + j);
    if constexpr (std::is_floating_point_v<P>) {
      return held != held ? d_pre : P(0);
    } else {
      return Eigen::internal::pselect(Eigen::internal::pcmp_eq(held, held), Eigen::internal::pzero(d_pre), d_pre);
    }
  }

 private:
  std::array<const Scalar*, 4> own_{};
};

}  // namespace lstmcore
