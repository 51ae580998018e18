// The GRU passes: gru_forward and gru_backward.
#include <string>

#include "arrays.hpp"
#include "lstmcore/gru.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

void gru_forward(const py::array& x, const py::array& wi, const py::array& wh,
                 const py::array& bi, const py::array& bh, const py::array& h0, bool reverse,
                 const py::array& y, Index y_offset, const py::object& gates,
                 const py::object& batch_sizes, bool batch_first) {
  const Dims d = dims_of(x, wh, 3, batch_first);
  const Index width = checked_offset(y, y_offset, d.hidden);
  const auto shape = shape_of(d, reverse, batch_sizes);
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto weights = checked_weights<Scalar>(wi, wh, bi, bh, d, 3);
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), true);
    // gates: the tape, or None (inference).
    auto* gp = checked_optional<Scalar>(gates, "gates",
                                        {d.steps, d.batch, gru_tape_width(d.hidden)}, true);
    py::gil_scoped_release release;
    lstmcore::gru_forward<Scalar>(shape, sequence(xp, d, d.input), weights, h0p, sequence(yp, d, width, y_offset), gp);
  });
}

void gru_backward(const py::array& x, const py::array& wi, const py::array& wh,
                  const py::array& bi, const py::array& bh, const py::array& h0, bool reverse,
                  const py::array& y, Index y_offset, const py::array& gates,
                  const py::array& dy, const py::object& dh_n, const py::array& dx,
                  const py::array& gwi, const py::array& gwh, const py::array& gbi,
                  const py::array& gbh, const py::array& dh0, const py::object& batch_sizes, bool batch_first,
                  bool accumulate_dx) {
  const Dims d = dims_of(x, wh, 3, batch_first);
  const Index width = checked_offset(y, y_offset, d.hidden);
  const auto shape = shape_of(d, reverse, batch_sizes);
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto weights = checked_weights<Scalar>(wi, wh, bi, bh, d, 3);
    const auto grads = checked_grads<Scalar>(gwi, gwh, gbi, gbh, d, 3);
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    const auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), false);
    const auto* gp = checked<Scalar>(gates, "gates",
                                     {d.steps, d.batch, gru_tape_width(d.hidden)}, false);
    const auto* dyp = checked<Scalar>(dy, "dy", sequence_shape(d, width), false);
    const Scalar* dhn = optional_state<Scalar>(dh_n, "dh_n", d);
    auto* dxp = checked<Scalar>(dx, "dx", sequence_shape(d, d.input), true);
    auto* dh0p = checked<Scalar>(dh0, "dh0", {d.batch, d.hidden}, true);
    py::gil_scoped_release release;
    const auto xs = sequence(xp, d, d.input), dxs = sequence(dxp, d, d.input);
    const auto ys = sequence(yp, d, width, y_offset), dys = sequence(dyp, d, width, y_offset);
    lstmcore::gru_backward<Scalar>(shape, xs, weights, h0p, ys, gp, dys, dhn, dxs, accumulate_dx, grads, dh0p);
  });
}

}  // namespace

void register_gru(py::module_& m) {
  using namespace pybind11::literals;
  m.def("gru_forward", &gru_forward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "h0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, py::kw_only(),
        "batch_sizes"_a = py::none(), "batch_first"_a = false);
  m.def("gru_backward", &gru_backward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "h0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "dy"_a, "dh_n"_a,
        "dx"_a, "grad_weight_ih"_a, "grad_weight_hh"_a, "grad_bias_ih"_a, "grad_bias_hh"_a,
        "dh0"_a, py::kw_only(), "batch_sizes"_a = py::none(), "batch_first"_a = false, "accumulate_dx"_a = false);
}

}  // namespace lstmcore::bindings
