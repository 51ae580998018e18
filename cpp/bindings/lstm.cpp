// The LSTM passes (plain, peephole and coupled cells): lstm_forward and lstm_backward.
#include <string>

#include "arrays.hpp"
#include "lstm_options.hpp"
#include "lstmcore/lstm_sequence.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

void lstm_forward(const py::array& x, const py::array& wi, const py::array& wh, const py::array& bi,
                  const py::array& bh, const py::array& h0, const py::array& c0, bool reverse, const py::array& y,
                  Index y_offset, const py::object& gates, const py::object& cells, const std::string& cell,
                  const py::object& peephole, const py::object& clamps, const py::object& batch_sizes,
                  const py::object& recurrent_mask, const py::object& zoneout_h, const py::object& zoneout_c,
                  double zoneout_rate, const py::object& cell_updates, const py::object& c_n, bool batch_first) {
  dispatch_cell(cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Dims d = dims_of(x, wh, K, batch_first);
    const Index width = checked_offset(y, y_offset, d.hidden);
    const auto shape = shape_of(d, reverse, batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto weights = checked_weights<Scalar>(wi, wh, bi, bh, d, K);
      // gates and cells: the tape, or both None (inference).
      if (gates.is_none() != cells.is_none()) {
        throw py::value_error(std::string("expected both gates and cells tapes, or neither, got ") +
                              (gates.is_none() ? "cells only" : "gates only"));
      }
      const bool taped = !gates.is_none();
      auto options = checked_options<Scalar>(cell, peephole, py::none(), clamps, d);
      add_regularizers<Scalar>(options, recurrent_mask, zoneout_h, zoneout_c, zoneout_rate, cell_updates, d, true,
                               taped);
      const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
      const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
      const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
      auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), true);
      Scalar* gp = checked_optional<Scalar>(gates, "gates", {d.steps, d.batch, K * d.hidden}, true);
      Scalar* cp = checked_optional<Scalar>(cells, "cells", {d.steps, d.batch, d.hidden}, true);
      Scalar* cnp = checked_optional<Scalar>(c_n, "c_n", {d.batch, d.hidden}, true);
      py::gil_scoped_release release;
      lstmcore::lstm_forward<Scalar, Kind::template type>(shape, sequence(xp, d, d.input), weights, options, h0p, c0p,
                                                          sequence(yp, d, width, y_offset), gp, cp, cnp);
    });
  });
}

void lstm_backward(const py::array& x, const py::array& wi, const py::array& wh, const py::array& bi,
                   const py::array& bh, const py::array& h0, const py::array& c0, bool reverse, const py::array& y,
                   Index y_offset, const py::array& gates, const py::array& cells, const py::array& dy,
                   const py::object& dh_n, const py::object& dc_n, const py::array& dx, const py::array& gwi,
                   const py::array& gwh, const py::array& gbi, const py::array& gbh, const py::array& dh0,
                   const py::array& dc0, const std::string& cell, const py::object& peephole,
                   const py::object& peephole_grad, const py::object& clamps, const py::object& batch_sizes,
                   const py::object& recurrent_mask, const py::object& zoneout_h, const py::object& zoneout_c,
                   double zoneout_rate, const py::object& cell_updates, bool batch_first, bool accumulate_dx) {
  dispatch_cell(cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Dims d = dims_of(x, wh, K, batch_first);
    const Index width = checked_offset(y, y_offset, d.hidden);
    const auto shape = shape_of(d, reverse, batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto weights = checked_weights<Scalar>(wi, wh, bi, bh, d, K);
      auto options = checked_options<Scalar>(cell, peephole, peephole_grad, clamps, d);
      add_regularizers<Scalar>(options, recurrent_mask, zoneout_h, zoneout_c, zoneout_rate, cell_updates, d, false);
      const auto grads = checked_grads<Scalar>(gwi, gwh, gbi, gbh, d, K);
      const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
      const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
      const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
      const auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), false);
      const auto* gp = checked<Scalar>(gates, "gates", {d.steps, d.batch, K * d.hidden}, false);
      const auto* cp = checked<Scalar>(cells, "cells", {d.steps, d.batch, d.hidden}, false);
      const auto* dyp = checked<Scalar>(dy, "dy", sequence_shape(d, width), false);
      const Scalar* dhn = optional_state<Scalar>(dh_n, "dh_n", d);
      const Scalar* dcn = optional_state<Scalar>(dc_n, "dc_n", d);
      auto* dxp = checked<Scalar>(dx, "dx", sequence_shape(d, d.input), true);
      auto* dh0p = checked<Scalar>(dh0, "dh0", {d.batch, d.hidden}, true);
      auto* dc0p = checked<Scalar>(dc0, "dc0", {d.batch, d.hidden}, true);
      py::gil_scoped_release release;
      const auto xs = sequence(xp, d, d.input), dxs = sequence(dxp, d, d.input);
      const auto ys = sequence(yp, d, width, y_offset), dys = sequence(dyp, d, width, y_offset);
      lstmcore::lstm_backward<Scalar, Kind::template type>(shape, xs, weights, options, h0p, c0p, ys, gp, cp, dys, dhn,
                                                           dcn, dxs, accumulate_dx, grads, dh0p, dc0p);
    });
  });
}

}  // namespace

void register_lstm(py::module_& m) {
  using namespace pybind11::literals;
  m.def("lstm_forward", &lstm_forward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a, "bias_hh"_a, "h0"_a, "c0"_a,
        "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "cells"_a, py::kw_only(), "cell"_a = "plain",
        "peephole"_a = py::none(), "clamps"_a = py::none(), "batch_sizes"_a = py::none(),
        "recurrent_mask"_a = py::none(), "zoneout_h"_a = py::none(), "zoneout_c"_a = py::none(), "zoneout_rate"_a = 0.0,
        "cell_updates"_a = py::none(), "c_n"_a = py::none(), "batch_first"_a = false);
  m.def("lstm_backward", &lstm_backward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a, "bias_hh"_a, "h0"_a, "c0"_a,
        "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "cells"_a, "dy"_a, "dh_n"_a, "dc_n"_a, "dx"_a, "grad_weight_ih"_a,
        "grad_weight_hh"_a, "grad_bias_ih"_a, "grad_bias_hh"_a, "dh0"_a, "dc0"_a, py::kw_only(), "cell"_a = "plain",
        "peephole"_a = py::none(), "grad_peephole"_a = py::none(), "clamps"_a = py::none(),
        "batch_sizes"_a = py::none(), "recurrent_mask"_a = py::none(), "zoneout_h"_a = py::none(),
        "zoneout_c"_a = py::none(), "zoneout_rate"_a = 0.0, "cell_updates"_a = py::none(), "batch_first"_a = false,
        "accumulate_dx"_a = false);
}

}  // namespace lstmcore::bindings
