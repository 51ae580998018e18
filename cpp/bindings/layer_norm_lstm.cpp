// The layer-normalised LSTM passes: layer_norm_lstm_forward and _backward.
#include <string>

#include "arrays.hpp"
#include "lstm_options.hpp"
#include "lstmcore/layer_norm_lstm.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

template <typename Scalar>
LayerNormTape<Scalar> checked_layer_norm_tape(const py::array& input_norm, const py::array& hidden_norm,
                                              const py::array& cell_norm, const py::array& inv_std, const Dims& d,
                                              bool writable) {
  return {checked<Scalar>(input_norm, "input_norm", {d.steps, d.batch, 4 * d.hidden}, writable),
          checked<Scalar>(hidden_norm, "hidden_norm", {d.steps, d.batch, 4 * d.hidden}, writable),
          checked<Scalar>(cell_norm, "cell_norm", {d.steps, d.batch, d.hidden}, writable),
          checked<Scalar>(inv_std, "inv_std", {d.steps, d.batch, 3}, writable)};
}

void layer_norm_lstm_forward(const py::array& x, const py::array& wi, const py::array& wh, const py::array& bi,
                             const py::array& bh, const py::array& gain_ih, const py::array& gain_hh,
                             const py::array& gain_cell, const py::array& bias_cell, const py::array& h0,
                             const py::array& c0, bool reverse, const py::array& y, Index y_offset,
                             const py::object& gates, const py::object& cells, const py::object& input_norm,
                             const py::object& hidden_norm, const py::object& cell_norm, const py::object& inv_std,
                             const py::object& clamps, const py::object& batch_sizes, const py::object& c_n,
                             bool batch_first) {
  // The tape (gates, cells and the four normalisation arrays), or all six None (inference).
  const bool taped = !gates.is_none();
  for (const py::object* part : {&cells, &input_norm, &hidden_norm, &cell_norm, &inv_std}) {
    if (part->is_none() == taped) {
      throw py::value_error(
          "expected the layer-norm tape whole (gates, cells, input_norm, hidden_norm, "
          "cell_norm, inv_std) or none of it");
    }
  }
  const Dims d = dims_of(x, wh, 4, batch_first);
  const Index width = checked_offset(y, y_offset, d.hidden);
  const auto shape = shape_of(d, reverse, batch_sizes);
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto weights = checked_weights<Scalar>(wi, wh, bi, bh, d, 4);
    const LayerNormParams<Scalar> ln{checked<Scalar>(gain_ih, "layer_norm_ih_weight", {4 * d.hidden}, false),
                                     checked<Scalar>(gain_hh, "layer_norm_hh_weight", {4 * d.hidden}, false),
                                     checked<Scalar>(gain_cell, "layer_norm_cell_weight", {d.hidden}, false),
                                     checked<Scalar>(bias_cell, "layer_norm_cell_bias", {d.hidden}, false)};
    const auto held = checked_clamps<Scalar>(clamps, d);
    LayerNormTape<Scalar> tape{};
    if (taped) {
      tape = checked_layer_norm_tape<Scalar>(
          array_argument(input_norm, "input_norm"), array_argument(hidden_norm, "hidden_norm"),
          array_argument(cell_norm, "cell_norm"), array_argument(inv_std, "inv_std"), d, true);
    }
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
    auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), true);
    auto* gp = checked_optional<Scalar>(gates, "gates", {d.steps, d.batch, 4 * d.hidden}, true);
    auto* cp = checked_optional<Scalar>(cells, "cells", {d.steps, d.batch, d.hidden}, true);
    Scalar* cnp = checked_optional<Scalar>(c_n, "c_n", {d.batch, d.hidden}, true);
    py::gil_scoped_release release;
    const auto xs = sequence(xp, d, d.input);
    const auto ys = sequence(yp, d, width, y_offset);
    lstmcore::layer_norm_lstm_forward<Scalar>(shape, xs, weights, ln, held, h0p, c0p, ys, gp, cp, tape, cnp);
  });
}

void layer_norm_lstm_backward(const py::array& x, const py::array& wi, const py::array& wh, const py::array& bi,
                              const py::array& bh, const py::array& gain_ih, const py::array& gain_hh,
                              const py::array& gain_cell, const py::array& bias_cell, const py::array& h0,
                              const py::array& c0, bool reverse, const py::array& y, Index y_offset,
                              const py::array& gates, const py::array& cells, const py::array& input_norm,
                              const py::array& hidden_norm, const py::array& cell_norm, const py::array& inv_std,
                              const py::array& dy, const py::object& dh_n, const py::object& dc_n, const py::array& dx,
                              const py::array& gwi, const py::array& gwh, const py::array& gbi, const py::array& gbh,
                              const py::array& g_gain_ih, const py::array& g_gain_hh, const py::array& g_gain_cell,
                              const py::array& g_bias_cell, const py::array& dh0, const py::array& dc0,
                              const py::object& clamps, const py::object& batch_sizes, bool batch_first,
                              bool accumulate_dx) {
  const Dims d = dims_of(x, wh, 4, batch_first);
  const Index width = checked_offset(y, y_offset, d.hidden);
  const auto shape = shape_of(d, reverse, batch_sizes);
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto weights = checked_weights<Scalar>(wi, wh, bi, bh, d, 4);
    const LayerNormParams<Scalar> ln{checked<Scalar>(gain_ih, "layer_norm_ih_weight", {4 * d.hidden}, false),
                                     checked<Scalar>(gain_hh, "layer_norm_hh_weight", {4 * d.hidden}, false),
                                     checked<Scalar>(gain_cell, "layer_norm_cell_weight", {d.hidden}, false),
                                     checked<Scalar>(bias_cell, "layer_norm_cell_bias", {d.hidden}, false)};
    const LayerNormGrads<Scalar> ln_grads{checked<Scalar>(g_gain_ih, "grad layer_norm_ih_weight", {4 * d.hidden}, true),
                                          checked<Scalar>(g_gain_hh, "grad layer_norm_hh_weight", {4 * d.hidden}, true),
                                          checked<Scalar>(g_gain_cell, "grad layer_norm_cell_weight", {d.hidden}, true),
                                          checked<Scalar>(g_bias_cell, "grad layer_norm_cell_bias", {d.hidden}, true)};
    const auto held = checked_clamps<Scalar>(clamps, d);
    const auto tape = checked_layer_norm_tape<Scalar>(input_norm, hidden_norm, cell_norm, inv_std, d, false);
    const auto grads = checked_grads<Scalar>(gwi, gwh, gbi, gbh, d, 4);
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
    const auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), false);
    const auto* gp = checked<Scalar>(gates, "gates", {d.steps, d.batch, 4 * d.hidden}, false);
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
    lstmcore::layer_norm_lstm_backward<Scalar>(shape, xs, weights, ln, held, h0p, c0p, ys, gp, cp, tape, dys, dhn, dcn,
                                               dxs, accumulate_dx, grads, ln_grads, dh0p, dc0p);
  });
}

}  // namespace

void register_layer_norm_lstm(py::module_& m) {
  using namespace pybind11::literals;
  m.def("layer_norm_lstm_forward", &layer_norm_lstm_forward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "layer_norm_ih_weight"_a, "layer_norm_hh_weight"_a, "layer_norm_cell_weight"_a,
        "layer_norm_cell_bias"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "cells"_a,
        "input_norm"_a, "hidden_norm"_a, "cell_norm"_a, "inv_std"_a, py::kw_only(), "clamps"_a = py::none(),
        "batch_sizes"_a = py::none(), "c_n"_a = py::none(), "batch_first"_a = false);
  m.def("layer_norm_lstm_backward", &layer_norm_lstm_backward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "layer_norm_ih_weight"_a, "layer_norm_hh_weight"_a, "layer_norm_cell_weight"_a,
        "layer_norm_cell_bias"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "cells"_a,
        "input_norm"_a, "hidden_norm"_a, "cell_norm"_a, "inv_std"_a, "dy"_a, "dh_n"_a, "dc_n"_a, "dx"_a,
        "grad_weight_ih"_a, "grad_weight_hh"_a, "grad_bias_ih"_a, "grad_bias_hh"_a, "grad_layer_norm_ih_weight"_a,
        "grad_layer_norm_hh_weight"_a, "grad_layer_norm_cell_weight"_a, "grad_layer_norm_cell_bias"_a, "dh0"_a, "dc0"_a,
        py::kw_only(), "clamps"_a = py::none(), "batch_sizes"_a = py::none(), "batch_first"_a = false,
        "accumulate_dx"_a = false);
}

}  // namespace lstmcore::bindings
