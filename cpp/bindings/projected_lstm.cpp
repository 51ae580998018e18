// The projected LSTM passes (h = (o * tanh(c)) W_hr^T): projected_lstm_forward and _backward.
#include <string>

#include "arrays.hpp"
#include "lstm_options.hpp"
#include "lstmcore/projected_lstm_sequence.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

void projected_lstm_forward(const py::array& x, const py::array& wi, const py::array& wh, const py::array& bi,
                            const py::array& bh, const py::array& whr, const py::array& h0, const py::array& c0,
                            bool reverse, const py::array& y, Index y_offset, const py::object& gates,
                            const py::object& cells, const py::object& cell_out, const std::string& cell,
                            const py::object& peephole, const py::object& clamps, const py::object& batch_sizes,
                            const py::object& c_n, bool batch_first) {
  // gates, cells and cell_out: the tape, or all three None (inference).
  if (gates.is_none() != cells.is_none() || gates.is_none() != cell_out.is_none()) {
    throw py::value_error("expected the gates, cells and cell_out tapes all three, or none");
  }
  dispatch_cell(cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    Index P = 0;
    const Dims d = projected_dims_of(x, whr, P, batch_first);
    const Index width = checked_offset(y, y_offset, P);
    const auto shape = shape_of(d, reverse, batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto weights = checked_weights<Scalar>(wi, wh, bi, bh, d, K, P);
      const auto options = checked_options<Scalar>(cell, peephole, py::none(), clamps, d);
      const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
      const auto* hrp = checked<Scalar>(whr, "weight_hr", {P, d.hidden}, false);
      const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, P}, false);
      const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
      auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), true);
      auto* gp = checked_optional<Scalar>(gates, "gates", {d.steps, d.batch, K * d.hidden}, true);
      auto* cp = checked_optional<Scalar>(cells, "cells", {d.steps, d.batch, d.hidden}, true);
      auto* rp = checked_optional<Scalar>(cell_out, "cell_out", {d.steps, d.batch, d.hidden}, true);
      Scalar* cnp = checked_optional<Scalar>(c_n, "c_n", {d.batch, d.hidden}, true);
      py::gil_scoped_release release;
      const auto xs = sequence(xp, d, d.input);
      const auto ys = sequence(yp, d, width, y_offset);
      lstmcore::projected_lstm_forward<Scalar, Kind::template type>(shape, P, xs, weights, hrp, options, h0p, c0p, ys,
                                                                    gp, cp, rp, cnp);
    });
  });
}

void projected_lstm_backward(const py::array& x, const py::array& wi, const py::array& wh, const py::array& bi,
                             const py::array& bh, const py::array& whr, const py::array& h0, const py::array& c0,
                             bool reverse, const py::array& y, Index y_offset, const py::array& gates,
                             const py::array& cells, const py::array& cell_out, const py::array& dy,
                             const py::object& dh_n, const py::object& dc_n, const py::array& dx, const py::array& gwi,
                             const py::array& gwh, const py::array& gbi, const py::array& gbh, const py::array& gwhr,
                             const py::array& dh0, const py::array& dc0, const std::string& cell,
                             const py::object& peephole, const py::object& peephole_grad, const py::object& clamps,
                             const py::object& batch_sizes, bool batch_first, bool accumulate_dx) {
  dispatch_cell(cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    Index P = 0;
    const Dims d = projected_dims_of(x, whr, P, batch_first);
    const Index width = checked_offset(y, y_offset, P);
    const auto shape = shape_of(d, reverse, batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto weights = checked_weights<Scalar>(wi, wh, bi, bh, d, K, P);
      const auto options = checked_options<Scalar>(cell, peephole, peephole_grad, clamps, d);
      const auto grads = checked_grads<Scalar>(gwi, gwh, gbi, gbh, d, K, P);
      const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
      const auto* hrp = checked<Scalar>(whr, "weight_hr", {P, d.hidden}, false);
      auto* ghrp = checked<Scalar>(gwhr, "grad weight_hr", {P, d.hidden}, true);
      const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, P}, false);
      const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
      const auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), false);
      const auto* gp = checked<Scalar>(gates, "gates", {d.steps, d.batch, K * d.hidden}, false);
      const auto* cp = checked<Scalar>(cells, "cells", {d.steps, d.batch, d.hidden}, false);
      const auto* rp = checked<Scalar>(cell_out, "cell_out", {d.steps, d.batch, d.hidden}, false);
      const auto* dyp = checked<Scalar>(dy, "dy", sequence_shape(d, width), false);
      const Scalar* dhn = checked_optional<Scalar>(dh_n, "dh_n", {d.batch, P}, false);
      const Scalar* dcn = optional_state<Scalar>(dc_n, "dc_n", d);
      auto* dxp = checked<Scalar>(dx, "dx", sequence_shape(d, d.input), true);
      auto* dh0p = checked<Scalar>(dh0, "dh0", {d.batch, P}, true);
      auto* dc0p = checked<Scalar>(dc0, "dc0", {d.batch, d.hidden}, true);
      py::gil_scoped_release release;
      const auto xs = sequence(xp, d, d.input), dxs = sequence(dxp, d, d.input);
      const auto ys = sequence(yp, d, width, y_offset), dys = sequence(dyp, d, width, y_offset);
      lstmcore::projected_lstm_backward<Scalar, Kind::template type>(shape, P, xs, weights, hrp, options, h0p, c0p, ys,
                                                                     gp, cp, rp, dys, dhn, dcn, dxs, accumulate_dx,
                                                                     grads, ghrp, dh0p, dc0p);
    });
  });
}

}  // namespace

void register_projected_lstm(py::module_& m) {
  using namespace pybind11::literals;
  m.def("projected_lstm_forward", &projected_lstm_forward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "weight_hr"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "cells"_a,
        "cell_out"_a, py::kw_only(), "cell"_a = "plain", "peephole"_a = py::none(), "clamps"_a = py::none(),
        "batch_sizes"_a = py::none(), "c_n"_a = py::none(), "batch_first"_a = false);
  m.def("projected_lstm_backward", &projected_lstm_backward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "weight_hr"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "cells"_a,
        "cell_out"_a, "dy"_a, "dh_n"_a, "dc_n"_a, "dx"_a, "grad_weight_ih"_a, "grad_weight_hh"_a, "grad_bias_ih"_a,
        "grad_bias_hh"_a, "grad_weight_hr"_a, "dh0"_a, "dc0"_a, py::kw_only(), "cell"_a = "plain",
        "peephole"_a = py::none(), "grad_peephole"_a = py::none(), "clamps"_a = py::none(),
        "batch_sizes"_a = py::none(), "batch_first"_a = false, "accumulate_dx"_a = false);
}

}  // namespace lstmcore::bindings
