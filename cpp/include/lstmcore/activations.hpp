// The one implementation of the gate nonlinearities, and the loop that applies the fused
// per-unit update a SIMD packet at a time.
//
// float32: Eigen's vectorized tanh (a clamped rational approximation) and logistic; the
// tests bound their error against NumPy's float64 functions (tests/test_activations.py).
// float64: the C library's tanh and exp, one value at a time (float64 is for accuracy,
// float32 for speed). Eigen's float versions clamp their input, which would turn NaN into
// a number, so NaN is selected back: a NaN in must stay a NaN out.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <type_traits>

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

// The unit of the fused loops: a SIMD packet for float, a plain value for double.
template <typename Scalar>
struct GatePacket {
  using type = Scalar;
};
template <>
struct GatePacket<float> {
  using type = Eigen::internal::packet_traits<float>::type;
};

template <typename P>
EIGEN_ALWAYS_INLINE P keep_nan(const P& x, const P& result) {
  if constexpr (std::is_floating_point_v<P>) {
    return x != x ? x : result;
  } else {
    return Eigen::internal::pselect(Eigen::internal::pcmp_eq(x, x), result, x);
  }
}

template <typename P>
EIGEN_ALWAYS_INLINE P gate_tanh(const P& x) {
  if constexpr (std::is_floating_point_v<P>) {
    return std::tanh(x);
  } else {
    return keep_nan(x, Eigen::internal::ptanh(x));
  }
}

template <typename P>
EIGEN_ALWAYS_INLINE P gate_sigmoid(const P& x) {
  if constexpr (std::is_floating_point_v<P>) {
    return P(1) / (P(1) + std::exp(-x));
  } else {
    return keep_nan(x, Eigen::internal::scalar_logistic_op<float>().packetOp(x));
  }
}

// The RNN's relu, max(x, 0); NaN passes through, as PyTorch's.
template <typename P>
EIGEN_ALWAYS_INLINE P gate_relu(const P& x) {
  if constexpr (std::is_floating_point_v<P>) {
    return x > P(0) || x != x ? x : P(0);
  } else {
    return keep_nan(x, Eigen::internal::pmax(x, Eigen::internal::pzero(x)));
  }
}

namespace detail {

// The tail of for_each_unit: one packet of each narrower width P has (AVX-512 16 -> 8 -> 4
// lanes), then single values. Without it, at H = 120 8 units a row went through the C
// library's exp and tanh, value by value, and the forward took longer than at H = 128.
template <typename P, typename Scalar, typename Body>
EIGEN_ALWAYS_INLINE void for_each_unit_tail(Index& j, Index n, Body& body) {
  using Half = typename Eigen::internal::unpacket_traits<P>::half;
  if constexpr (!std::is_same_v<Half, P>) {
    constexpr Index lanes = Eigen::internal::unpacket_traits<Half>::size;
    if (j + lanes <= n) {
      body(j, Half{});
      j += lanes;
    }
    for_each_unit_tail<Half, Scalar>(j, n, body);
  }
}

}  // namespace detail

// Calls body(j, P{}) for j in [first, last) (or [0, n)) a packet at a time, then for the
// tail with narrower packets and body(j, Scalar{}) for what is left. The vectorized
// functions compute each lane alike whatever the packet's width, so a unit's value does
// not depend on where the split between threads puts it.
template <typename Scalar, typename Body>
EIGEN_ALWAYS_INLINE void for_each_unit(Index first, Index last, Body&& body) {
  using P = typename GatePacket<Scalar>::type;
  constexpr Index lanes = Eigen::internal::unpacket_traits<P>::size;
  Index j = first;
  if constexpr (lanes > 1) {
    for (; j + lanes <= last; j += lanes) body(j, P{});
    detail::for_each_unit_tail<P, Scalar>(j, last, body);
  }
  for (; j < last; ++j) body(j, Scalar{});
}

template <typename Scalar, typename Body>
EIGEN_ALWAYS_INLINE void for_each_unit(Index n, Body&& body) {
  for_each_unit<Scalar>(0, n, body);
}

// Exposed for the tests that bound the error of the vectorized functions.
template <typename Scalar>
void apply_gate_tanh(const Scalar* x, Scalar* out, Index n) {
  using namespace Eigen::internal;
  for_each_unit<Scalar>(n, [&](Index j, auto p) {
    using P = decltype(p);
    pstoreu(out + j, gate_tanh(ploadu<P>(x + j)));
  });
}

template <typename Scalar>
void apply_gate_sigmoid(const Scalar* x, Scalar* out, Index n) {
  using namespace Eigen::internal;
  for_each_unit<Scalar>(n, [&](Index j, auto p) {
    using P = decltype(p);
    pstoreu(out + j, gate_sigmoid(ploadu<P>(x + j)));
  });
}

}  // namespace lstmcore
