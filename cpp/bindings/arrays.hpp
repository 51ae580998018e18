// Array conversion and checks: the one place on the C++ side where shapes are checked.
//
// Every binding takes NumPy arrays (sequences time-major, or batch-first with
// batch_first=True; tapes time-major) and checks here that each has exactly the dtype,
// shape and contiguity the core will index, so no call from Python can make the core read
// or write out of bounds. Friendly, user-level checks (shapes in the user's terms, state
// tuples, ...) live in the Python layer; the checks here guard memory and name the array
// that failed.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "lstmcore/eigen_types.hpp"
#include "lstmcore/sequence.hpp"

namespace lstmcore::bindings {

namespace py = pybind11;

std::string shape_text(const std::vector<py::ssize_t>& shape);

// An optional argument that must be a NumPy array itself: converting anything else (a
// list) would make a temporary array, freed before the core reads or writes through the
// pointer taken from it.
py::array array_argument(const py::object& a, const char* name);

// Raises ValueError naming `name`, the expected dtype and shape, and what `a` is.
[[noreturn]] void throw_mismatch(const py::array& a, const char* name, const py::dtype& expected,
                                 const std::vector<py::ssize_t>& shape, bool ok_layout);

// Checks `a` is a C-contiguous array of Scalar with exactly `shape`; returns its data.
template <typename Scalar>
Scalar* checked(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape, bool writable) {
  const auto expected = py::dtype::of<Scalar>();
  const bool ok_layout = (a.flags() & py::array::c_style) != 0;
  const bool ok_shape =
      a.ndim() == static_cast<py::ssize_t>(shape.size()) && std::equal(shape.begin(), shape.end(), a.shape());
  if (!a.dtype().is(expected) || !ok_layout || !ok_shape) throw_mismatch(a, name, expected, shape, ok_layout);
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  return static_cast<Scalar*>(const_cast<void*>(a.data()));
}

// As `checked`, for an argument that may be None (nullptr) and is otherwise an array.
template <typename Scalar>
Scalar* checked_optional(const py::object& a, const char* name, const std::vector<py::ssize_t>& shape,
                         bool writable) {
  if (a.is_none()) return nullptr;
  return checked<Scalar>(array_argument(a, name), name, shape, writable);
}

// A call's sizes; the sequences x, y, dy, dx are (T, B, features) arrays, or (B, T,
// features) when batch_first. The tape is always time-major (T, B, ...).
struct Dims {
  Index steps, batch, input, hidden;
  bool batch_first;
};

// The shape of a sequence array with `features` features in the call's layout.
std::vector<py::ssize_t> sequence_shape(const Dims& d, Index features);

// The core's view of a checked sequence array of `width` features, from column `offset`.
template <typename Scalar>
SequenceView<Scalar> sequence(Scalar* data, const Dims& d, Index width, Index offset = 0) {
  if (d.batch_first) return {data + offset, width, d.steps * width};
  return {data + offset, d.batch * width, width};
}

// T, B, I from x in the call's layout, and H: a Dims.
Dims sequence_dims(const py::array& x, Index hidden, bool batch_first);

// T, B, I from x and H from weight_hh (gates*H, H).
Dims dims_of(const py::array& x, const py::array& weight_hh, Index gates, bool batch_first);

// T, B, I from x; H and P from weight_hr (P, H).
Dims projected_dims_of(const py::array& x, const py::array& weight_hr, Index& proj, bool batch_first);

// The (T, B, width) output y and the column where this direction's features start;
// returns the width. `features`: H, or P for the projected LSTM.
Index checked_offset(const py::array& y, Index offset, Index features);

// weight_ih (gates*H, I), weight_hh (gates*H, recurrent), bias_ih and bias_hh (gates*H,).
// `recurrent`: the width of the state W_hh multiplies (H, or P when projected).
template <typename Scalar>
GatedWeights<Scalar> checked_weights(const py::array& wi, const py::array& wh, const py::array& bi,
                                     const py::array& bh, const Dims& d, Index gates, Index recurrent = 0) {
  const py::ssize_t rows = gates * d.hidden;
  return {checked<Scalar>(wi, "weight_ih", {rows, d.input}, false),
          checked<Scalar>(wh, "weight_hh", {rows, recurrent ? recurrent : d.hidden}, false),
          checked<Scalar>(bi, "bias_ih", {rows}, false), checked<Scalar>(bh, "bias_hh", {rows}, false)};
}

template <typename Scalar>
GatedGrads<Scalar> checked_grads(const py::array& wi, const py::array& wh, const py::array& bi, const py::array& bh,
                                 const Dims& d, Index gates, Index recurrent = 0) {
  const py::ssize_t rows = gates * d.hidden;
  return {checked<Scalar>(wi, "grad weight_ih", {rows, d.input}, true),
          checked<Scalar>(wh, "grad weight_hh", {rows, recurrent ? recurrent : d.hidden}, true),
          checked<Scalar>(bi, "grad bias_ih", {rows}, true), checked<Scalar>(bh, "grad bias_hh", {rows}, true)};
}

// Optional (B, H) state gradient: None means zero.
template <typename Scalar>
const Scalar* optional_state(const py::object& a, const char* name, const Dims& d) {
  return checked_optional<Scalar>(a, name, {d.batch, d.hidden}, false);
}

// A backward's optional hidden_grads output: None, or (T, B, width) time-major, written.
template <typename Scalar>
Scalar* optional_hidden_grads(const py::object& a, const Dims& d, Index width) {
  return checked_optional<Scalar>(a, "hidden_grads", {d.steps, d.batch, width}, true);
}

// The arrays of a backward over one state h (GRU, RNN), checked: the tape's x, h0 and y,
// and the call's dy, dh_n (None: zero), dx, dh0 and hidden_grads (None: not recorded).
template <typename Scalar>
struct HiddenBackwardArrays {
  const Scalar *x, *h0, *y, *dy, *dh_n;
  Scalar *dx, *dh0, *hidden_grads;
};

// `tape` has x, h0 and y; `width`: y's features (D*H, this direction's at its offset).
template <typename Scalar, typename Tape>
HiddenBackwardArrays<Scalar> checked_hidden_backward_arrays(const Tape& tape, const py::array& dy,
                                                            const py::object& dh_n, const py::array& dx,
                                                            const py::array& dh0, const py::object& hidden_grads,
                                                            const Dims& d, Index width) {
  return {checked<Scalar>(tape.x, "x", sequence_shape(d, d.input), false),
          checked<Scalar>(tape.h0, "h0", {d.batch, d.hidden}, false),
          checked<Scalar>(tape.y, "y", sequence_shape(d, width), false),
          checked<Scalar>(dy, "dy", sequence_shape(d, width), false),
          optional_state<Scalar>(dh_n, "dh_n", d),
          checked<Scalar>(dx, "dx", sequence_shape(d, d.input), true),
          checked<Scalar>(dh0, "dh0", {d.batch, d.hidden}, true),
          optional_hidden_grads<Scalar>(hidden_grads, d, d.hidden)};
}

// Calls fn(Scalar{}) for the dtype of x: float32 or float64.
template <typename Fn>
void dispatch(const py::array& x, Fn&& fn) {
  if (x.dtype().is(py::dtype::of<float>())) return fn(float{});
  if (x.dtype().is(py::dtype::of<double>())) return fn(double{});
  throw py::type_error("expected float32 or float64 arrays, got " + std::string(py::str(x.dtype())));
}

// The core's SequenceShape, with batch_sizes (rows alive per time step, (T,) int64,
// non-increasing in [0, B]; None: all B rows) checked.
SequenceShape shape_of(const Dims& d, bool reverse, const py::object& batch_sizes);

}  // namespace lstmcore::bindings

namespace lstmcore::bindings {

// How one layer-direction's pass runs: the direction, where its features start in y, the
// rows alive per step and the layout of x, y, dy and dx. Bound as _core.PassOptions.
struct PassOptions {
  bool reverse = false;
  Index y_offset = 0;
  py::object batch_sizes = py::none();  // None or (T,) int64, non-increasing
  bool batch_first = false;
};

// Checks that a tape a backward was given was written by a forward of these sizes.
void check_tape_dims(const char* kind, Index steps, Index batch, Index hidden, const Dims& d);

}  // namespace lstmcore::bindings

namespace lstmcore::bindings {

// A read-only NumPy view of `data` with `shape` (C order) that keeps `owner` alive.
template <typename Scalar>
py::array read_only_view(const py::object& owner, const Scalar* data, const std::vector<py::ssize_t>& shape) {
  py::array view(py::dtype::of<Scalar>(), shape, {}, data, owner);
  view.attr("setflags")(py::arg("write") = false);
  return view;
}

}  // namespace lstmcore::bindings
