// The bias gradient of a gated cell: its gate gradients summed over rows, added by the
// cell's backward while they are in registers (a column sum over the whole gate-gradient
// tape after the loop read that whole tape back from memory).
#pragma once

#include <Eigen/Core>
#include <initializer_list>

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

template <typename Scalar>
class GateSums {
 public:
  // sums: (gates, n) for one thread's n units, or nullptr to keep none.
  GateSums(Scalar* sums, Index n) : sums_(sums), n_(n) {}

  // Writes units [j, j + lanes) of each gate's gradient, gate k at da + k * stride (the
  // tape's layout), and adds them to the sums.
  template <typename P, typename... Gradients>
  EIGEN_ALWAYS_INLINE void write(Scalar* da, Index stride, Index j, const P& first,
                                 const Gradients&... rest) const {
    int gate = 0;
    for (const P& gradient : {first, rest...}) {
      Eigen::internal::pstoreu(da + gate * stride + j, gradient);
      if (sums_) {
        Scalar* sum = sums_ + gate * n_ + j;
        Eigen::internal::pstoreu(sum, Eigen::internal::padd(Eigen::internal::ploadu<P>(sum), gradient));
      }
      ++gate;
    }
  }

 private:
  Scalar* sums_ = nullptr;
  Index n_ = 0;
};

}  // namespace lstmcore
