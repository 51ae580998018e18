// The bias gradient of a gated cell: its gate gradients summed over rows, added by the
// cell's backward while they are in registers (a column sum over the whole gate-gradient
// tape after the loop was 5% of a projected LSTM's training step at H=256, B=64).
#pragma once

#include <Eigen/Core>

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

template <typename Scalar>
class GateSums {
 public:
  GateSums() = default;
  // sums: (gates, n) for one thread's n units, or nullptr to keep none.
  GateSums(Scalar* sums, Index n) : sums_(sums), n_(n) {}

  template <typename P>
  EIGEN_ALWAYS_INLINE void add(int gate, Index j, const P& gradient) const {
    if (!sums_) return;
    Scalar* sum = sums_ + gate * n_ + j;
    Eigen::internal::pstoreu(sum, Eigen::internal::padd(Eigen::internal::ploadu<P>(sum), gradient));
  }

 private:
  Scalar* sums_ = nullptr;
  Index n_ = 0;
};

}  // namespace lstmcore
