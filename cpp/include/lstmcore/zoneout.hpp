// Zoneout around any LSTM cell (lstm_options.hpp gives the equations): the cell computes
// its update c~_t, h~_t; each unit then keeps its previous state with weight kappa.
// Backward splits the incoming gradients the same way: (1 - kappa) of them flows into the
// cell's update, kappa of them straight to the previous state.
#pragma once

#include <Eigen/Core>

#include "lstmcore/activations.hpp"
#include "lstmcore/lstm_options.hpp"

namespace lstmcore {

template <typename Scalar>
class Zoneout {
 public:
  // `row`: the (t*B + b) row of the masks; `first_unit`: this thread's first unit.
  Zoneout(const LstmOptions<Scalar>& options, Index row, Index hidden, Index first_unit)
      : rate_(options.zoneout_rate),
        keep_h_(options.zoneout_h ? options.zoneout_h + row * hidden + first_unit : nullptr),
        keep_c_(options.zoneout_c ? options.zoneout_c + row * hidden + first_unit : nullptr) {}

  // c: c~_t in, c_t out; h: h~_t in, h_t out; update: where c~_t is kept for backward, or
  // nullptr (no tape).
  void forward(Index n, const Scalar* c_prev, Scalar* c, const Scalar* h_prev, Scalar* h, Scalar* update) const {
    for_each_unit<Scalar>(n, [&](Index j, auto p) {
      using namespace Eigen::internal;
      using P = decltype(p);
      const P c_new = ploadu<P>(c + j), h_new = ploadu<P>(h + j);
      if (update) pstoreu(update + j, c_new);
      pstoreu(c + j, pmadd(keep<P>(keep_c_, j), psub(ploadu<P>(c_prev + j), c_new), c_new));
      pstoreu(h + j, pmadd(keep<P>(keep_h_, j), psub(ploadu<P>(h_prev + j), h_new), h_new));
    });
  }

  // Before the cell's backward: dh_total = dy + dh (gradient of h_t) becomes the cell's
  // dy (into d_update_h) and the direct part kappa_h * dh_total (into dh); dc (gradient of
  // c_t) becomes the cell's share (1 - kappa_c) * dc, the direct part goes to dc_direct.
  void split_gradients(Index n, const Scalar* dy, Scalar* dh, Scalar* dc, Scalar* d_update_h,
                       Scalar* dc_direct) const {
    for_each_unit<Scalar>(n, [&](Index j, auto p) {
      using namespace Eigen::internal;
      using P = decltype(p);
      const P one = pset1<P>(Scalar(1));
      const P dh_total = padd(ploadu<P>(dy + j), ploadu<P>(dh + j));
      const P kh = keep<P>(keep_h_, j), kc = keep<P>(keep_c_, j);
      const P dc_total = ploadu<P>(dc + j);
      pstoreu(d_update_h + j, pmul(psub(one, kh), dh_total));
      pstoreu(dh + j, pmul(kh, dh_total));
      pstoreu(dc + j, pmul(psub(one, kc), dc_total));
      pstoreu(dc_direct + j, pmul(kc, dc_total));
    });
  }

 private:
  template <typename P>
  EIGEN_ALWAYS_INLINE P keep(const Scalar* mask, Index j) const {
    return mask ? Eigen::internal::ploadu<P>(mask + j) : Eigen::internal::pset1<P>(rate_);
  }

  Scalar rate_;
  const Scalar* keep_h_;
  const Scalar* keep_c_;
};

}  // namespace lstmcore
