// The narrow path of prepared inference (python/lstmcore/rnn/_prepared.py): a layer-direction's
// forward bound once to its checked weights and options (a NarrowPass, made by each
// family's *_narrow_pass next to its forward), and a layer's passes run as one call from
// Python (NarrowStack, narrow.cpp), which checks the arrays, allocates the outputs and
// gathers the final state. A pass's run takes raw pointers: a step at small sizes spent
// most of its time making NumPy views and tape objects for each pass, not computing.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <memory>
#include <string>

#include "arrays.hpp"
#include "lstmcore/eigen_types.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/time_loop.hpp"

namespace lstmcore::bindings {

namespace py = pybind11;

// One pass's arrays, of the pass's dtype, checked by the NarrowStack against the pass's
// sizes: x (steps, batch, input) and y (steps, batch, y_width) in the stack's layout
// (this pass's features from column NarrowPass::offset of y), h0 (batch, features), c0 and
// c_n (batch, cell_features) or null without a cell state.
struct NarrowArrays {
  const void* x;
  void* y;
  Index steps, batch, y_width;
  bool batch_first;
  const void* h0;
  const void* c0;
  void* c_n;
};

// What a pass's run needs of its own fields (NarrowPass holds a copy).
struct NarrowForm {
  bool reverse = false;  // runs from each sequence's end: its final h is at t = 0
  Index offset = 0;      // its features' first column in y
  Index input = 0;       // x's features
  Index hidden = 0;      // the core's H
};

struct NarrowPass {
  // Runs the family's forward on the arrays, as its binding does; called without the GIL.
  std::function<void(const NarrowArrays&)> run;
  NarrowForm form;
  Index features = 0;       // h's: H, or P for the projected LSTM
  Index cell_features = 0;  // c's: H for the LSTM families, 0 for GRU and RNN
  py::dtype dtype;          // of every array it reads and writes
};

// The core's view of a pass's arrays, for the family's forward.
template <typename Scalar>
struct NarrowViews {
  SequenceShape shape;
  SequenceView<const Scalar> x;
  SequenceView<Scalar> y;
  const Scalar *h0, *c0;
  Scalar* c_n;
};

template <typename Scalar>
NarrowViews<Scalar> narrow_views(const NarrowForm& f, const NarrowArrays& a) {
  const Dims d{a.steps, a.batch, f.input, f.hidden, a.batch_first};
  return {{a.steps, a.batch, f.input, f.hidden, f.reverse, nullptr},
          sequence(static_cast<const Scalar*>(a.x), d, f.input),
          sequence(static_cast<Scalar*>(a.y), d, a.y_width, f.offset),
          static_cast<const Scalar*>(a.h0),
          static_cast<const Scalar*>(a.c0),
          static_cast<Scalar*>(a.c_n)};
}

// The weights' Dims for a pass of `input` features (steps and batch are each call's).
inline Dims weight_dims(Index input, Index hidden) {
  if (input < 1 || hidden < 1) throw py::value_error("expected input and hidden sizes of at least 1");
  return {0, 0, input, hidden, false};
}

// A matrix's size along `axis`, after checking its rank is 2.
inline Index matrix_size(const py::array& a, const char* name, int axis) {
  if (a.ndim() != 2) throw py::value_error(std::string("expected ") + name + " of rank 2");
  return a.shape(axis);
}

// A pass's fields other than run, for weights of `input` by `hidden` (the core's H), from
// its PassOptions, which must ask for no lengths.
template <typename Scalar>
NarrowPass narrow_pass_of(const PassOptions& pass, Index input, Index hidden, Index features, Index cell_features) {
  if (!pass.batch_sizes.is_none()) throw py::value_error("a narrow pass runs without lengths");
  return {nullptr, {pass.reverse, pass.y_offset, input, hidden}, features, cell_features, py::dtype::of<Scalar>()};
}

// The narrow pass of a family with one state h and `gates` gate blocks (GRU, RNN): its
// weights checked and packed once, and forward(Scalar{}, views, w, packed) bound, called
// with the pass's views, the checked weights and the packed ones, of the weights' dtype.
template <typename Weights, typename Forward>
NarrowPass single_state_narrow_pass(const Weights& weights, const PassOptions& options, Index gates,
                                    Forward forward) {
  const Index hidden = matrix_size(weights.weight_hh, "weight_hh", 1);
  const Dims d = weight_dims(matrix_size(weights.weight_ih, "weight_ih", 1), hidden);
  NarrowPass narrow;
  dispatch(weights.weight_hh, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto w =
        checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, gates);
    const auto packed = std::make_shared<const PackedGateWeights<Scalar>>(w, gates, hidden, d.input, hidden);
    narrow = narrow_pass_of<Scalar>(options, d.input, hidden, hidden, 0);
    // weights hold the arrays that w points into.
    narrow.run = [weights, w, packed, forward, form = narrow.form](const NarrowArrays& a) {
      forward(Scalar{}, narrow_views<Scalar>(form, a), w, packed.get());
    };
  });
  return narrow;
}

}  // namespace lstmcore::bindings
