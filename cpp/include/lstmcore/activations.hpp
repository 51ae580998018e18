// The one implementation of the gate nonlinearities, vectorized by Eigen.
//
// Eigen 3.4's float tanh is a clamped rational approximation and its float logistic
// clamps its input; both are within a few ulp of the exact function (tests measure
// the bound against NumPy). The clamps turn NaN into a finite number, so NaN is
// selected back explicitly: a NaN in the input must stay visible in the output.
#pragma once

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

template <typename Derived>
auto gate_sigmoid(const Eigen::ArrayBase<Derived>& x) {
  return (x != x).select(x, x.logistic());
}

template <typename Derived>
auto gate_tanh(const Eigen::ArrayBase<Derived>& x) {
  return (x != x).select(x, x.tanh());
}

}  // namespace lstmcore
