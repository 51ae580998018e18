// The layer-normalised LSTM passes: layer_norm_lstm_forward returns a LayerNormLstmTape the
// core owns, layer_norm_lstm_backward takes it back.
//
// Weights come as _core.LayerNormLstmWeights (with the four layer-norm parameters), the
// clamps as _core.LstmOptions (plain cell, no recurrent dropout or zoneout); the tape keeps
// references to the forward's x, h0, c0, y and both options objects.
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "arrays.hpp"
#include "lstm_options.hpp"
#include "lstmcore/layer_norm_lstm.hpp"
#include "lstmcore/tapes.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

// LstmWeights (no peephole) and the gains layer_norm_ih_weight, layer_norm_hh_weight
// (4H,), layer_norm_cell_weight and the bias layer_norm_cell_bias (H,).
struct LayerNormLstmWeights {
  py::array weight_ih, weight_hh, bias_ih, bias_hh;
  py::array layer_norm_ih_weight, layer_norm_hh_weight, layer_norm_cell_weight, layer_norm_cell_bias;
};

struct BoundLayerNormLstmTape {
  std::variant<LayerNormLstmTape<float>, LayerNormLstmTape<double>> core;
  py::array x, h0, c0, y;
  PassOptions pass;
  LstmCallOptions options;
};

template <typename Scalar>
std::array<const Scalar*, 4> checked_layer_norm_clamps(const LstmCallOptions& o, const Dims& d) {
  if (o.cell != "plain")
    throw py::value_error("expected cell 'plain' for the layer-norm LSTM, got '" + o.cell + "'");
  const auto options = checked_cell_options<Scalar>(o, py::none(), py::none(), d);
  if (options.recurrent_mask || options.zoneout())
    throw py::value_error("the layer-norm LSTM takes no recurrent_mask or zoneout");
  return options.clamps;
}

template <typename Scalar>
LayerNormParams<Scalar> checked_params(const LayerNormLstmWeights& w, const Dims& d) {
  return {checked<Scalar>(w.layer_norm_ih_weight, "layer_norm_ih_weight", {4 * d.hidden}, false),
          checked<Scalar>(w.layer_norm_hh_weight, "layer_norm_hh_weight", {4 * d.hidden}, false),
          checked<Scalar>(w.layer_norm_cell_weight, "layer_norm_cell_weight", {d.hidden}, false),
          checked<Scalar>(w.layer_norm_cell_bias, "layer_norm_cell_bias", {d.hidden}, false)};
}

py::object layer_norm_lstm_forward(const py::array& x, const LayerNormLstmWeights& weights, const py::array& h0,
                                   const py::array& c0, const py::array& y, const PassOptions& pass,
                                   const LstmCallOptions& cell_options, bool taped) {
  const Dims d = dims_of(x, weights.weight_hh, 4, pass.batch_first);
  const Index width = checked_offset(y, pass.y_offset, d.hidden);
  const auto shape = shape_of(d, pass.reverse, pass.batch_sizes);
  py::object result;
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto w =
        checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, 4);
    const auto ln = checked_params<Scalar>(weights, d);
    const auto held = checked_layer_norm_clamps<Scalar>(cell_options, d);
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
    auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), true);
    auto bound = std::make_unique<BoundLayerNormLstmTape>(BoundLayerNormLstmTape{
        LayerNormLstmTape<Scalar>(d.steps, d.batch, d.hidden, taped), x, h0, c0, y, pass, cell_options});
    auto& tape = std::get<LayerNormLstmTape<Scalar>>(bound->core);
    Scalar* gates = taped ? tape.gates.data() : nullptr;
    Scalar* cells = taped ? tape.cells.data() : nullptr;
    const LayerNormTape<Scalar> norms = tape.norms();
    Scalar* c_n = tape.c_n.data();
    result = py::cast(std::move(bound));
    py::gil_scoped_release release;
    const auto xs = sequence(xp, d, d.input);
    const auto ys = sequence(yp, d, width, pass.y_offset);
    lstmcore::layer_norm_lstm_forward<Scalar>(shape, xs, w, ln, held, h0p, c0p, ys, gates, cells, norms, c_n);
  });
  return result;
}

void layer_norm_lstm_backward(const BoundLayerNormLstmTape& tape, const LayerNormLstmWeights& weights,
                              const py::array& dy, const py::object& dh_n, const py::object& dc_n,
                              const LayerNormLstmWeights& grads, const py::array& dx, const py::array& dh0,
                              const py::array& dc0, bool accumulate_dx, const py::object& hidden_grads) {
  const PassOptions& pass = tape.pass;
  const Dims d = dims_of(tape.x, weights.weight_hh, 4, pass.batch_first);
  const Index width = checked_offset(tape.y, pass.y_offset, d.hidden);
  const auto shape = shape_of(d, pass.reverse, pass.batch_sizes);
  dispatch(tape.x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto* core = std::get_if<LayerNormLstmTape<Scalar>>(&tape.core);
    if (!core) throw py::type_error("expected a layer-norm LSTM tape of x's dtype");
    if (!core->taped) throw py::value_error("expected a tape from a forward with taped=True, got one without");
    check_tape_dims("layer-norm LSTM tape", core->steps, core->batch, core->hidden, d);
    const auto w =
        checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, 4);
    const auto ln = checked_params<Scalar>(weights, d);
    const LayerNormGrads<Scalar> ln_grads{
        checked<Scalar>(grads.layer_norm_ih_weight, "grad layer_norm_ih_weight", {4 * d.hidden}, true),
        checked<Scalar>(grads.layer_norm_hh_weight, "grad layer_norm_hh_weight", {4 * d.hidden}, true),
        checked<Scalar>(grads.layer_norm_cell_weight, "grad layer_norm_cell_weight", {d.hidden}, true),
        checked<Scalar>(grads.layer_norm_cell_bias, "grad layer_norm_cell_bias", {d.hidden}, true)};
    const auto held = checked_layer_norm_clamps<Scalar>(tape.options, d);
    const auto g = checked_grads<Scalar>(grads.weight_ih, grads.weight_hh, grads.bias_ih, grads.bias_hh, d, 4);
    const auto a = checked_backward_arrays<Scalar>(tape, dy, dh_n, dc_n, dx, dh0, dc0, d, width, d.hidden);
    Scalar* hidden = optional_hidden_grads<Scalar>(hidden_grads, d, d.hidden);
    // Backward reads the tape only; the core's kernels take the pointers non-const.
    auto& readable = const_cast<LayerNormLstmTape<Scalar>&>(*core);
    const LayerNormTape<Scalar> norms = readable.norms();
    py::gil_scoped_release release;
    const auto xs = sequence(a.x, d, d.input), dxs = sequence(a.dx, d, d.input);
    const auto ys = sequence(a.y, d, width, pass.y_offset), dys = sequence(a.dy, d, width, pass.y_offset);
    lstmcore::layer_norm_lstm_backward<Scalar>(shape, xs, w, ln, held, a.h0, a.c0, ys, core->gates.data(),
                                               core->cells.data(), norms, dys, a.dh_n, a.dc_n, dxs, accumulate_dx,
                                               g, ln_grads, a.dh0, a.dc0, hidden);
  });
}

// A read-only (T, B, width) view of the buffer `pick` names, or None without a tape;
// width 0: c_n's (B, H).
template <typename Pick>
py::object tape_view(const py::object& self, Pick pick, Index columns_per_hidden, Index fixed_columns = 0) {
  const auto& tape = self.cast<const BoundLayerNormLstmTape&>();
  return std::visit(
      [&](const auto& core) -> py::object {
        const auto* data = pick(core).data();
        if (columns_per_hidden == 0 && fixed_columns == 0)
          return read_only_view(self, data, {core.batch, core.hidden});
        if (!core.taped) return py::none();
        const Index width = fixed_columns ? fixed_columns : columns_per_hidden * core.hidden;
        return read_only_view(self, data, {core.steps, core.batch, width});
      },
      tape.core);
}

}  // namespace

void register_layer_norm_lstm(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<LayerNormLstmWeights>(m, "LayerNormLstmWeights",
                                   "A layer-norm LSTM layer-direction's weights (or their gradients) by name: "
                                   "references to the arrays, not copies.")
      .def(py::init([](py::array wi, py::array wh, py::array bi, py::array bh, py::array gain_ih, py::array gain_hh,
                       py::array gain_cell, py::array bias_cell) {
             return LayerNormLstmWeights{std::move(wi),        std::move(wh),       std::move(bi),
                                         std::move(bh),        std::move(gain_ih),  std::move(gain_hh),
                                         std::move(gain_cell), std::move(bias_cell)};
           }),
           "weight_ih"_a, "weight_hh"_a, "bias_ih"_a, "bias_hh"_a, "layer_norm_ih_weight"_a,
           "layer_norm_hh_weight"_a, "layer_norm_cell_weight"_a, "layer_norm_cell_bias"_a)
      .def_readonly("weight_ih", &LayerNormLstmWeights::weight_ih)
      .def_readonly("weight_hh", &LayerNormLstmWeights::weight_hh)
      .def_readonly("bias_ih", &LayerNormLstmWeights::bias_ih)
      .def_readonly("bias_hh", &LayerNormLstmWeights::bias_hh)
      .def_readonly("layer_norm_ih_weight", &LayerNormLstmWeights::layer_norm_ih_weight)
      .def_readonly("layer_norm_hh_weight", &LayerNormLstmWeights::layer_norm_hh_weight)
      .def_readonly("layer_norm_cell_weight", &LayerNormLstmWeights::layer_norm_cell_weight)
      .def_readonly("layer_norm_cell_bias", &LayerNormLstmWeights::layer_norm_cell_bias);
  py::class_<BoundLayerNormLstmTape>(m, "LayerNormLstmTape",
                                     "What a layer-norm LSTM forward recorded for its backward; made by "
                                     "layer_norm_lstm_forward.")
      .def_property_readonly(
          "gates",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.gates; }, 4);
          },
          "(T, B, 4H) read-only activated gates, or None without a tape.")
      .def_property_readonly(
          "cells",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.cells; }, 1);
          },
          "(T, B, H) read-only c_t, or None without a tape.")
      .def_property_readonly(
          "input_norm",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.input_norm; }, 4);
          },
          "(T, B, 4H) read-only normalised input products, or None without a tape.")
      .def_property_readonly(
          "hidden_norm",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.hidden_norm; }, 4);
          },
          "(T, B, 4H) read-only normalised recurrent products, or None without a tape.")
      .def_property_readonly(
          "cell_norm",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.cell_norm; }, 1);
          },
          "(T, B, H) read-only normalised cells, or None without a tape.")
      .def_property_readonly(
          "inv_std",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.inv_std; }, 0, 3);
          },
          "(T, B, 3) read-only 1/std of the input, hidden and cell rows, or None without a tape.")
      .def_property_readonly(
          "c_n",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.c_n; }, 0);
          },
          "(B, H) read-only: each sequence's last c_t.")
      .def_property_readonly(
          "options", [](const BoundLayerNormLstmTape& t) { return t.options; },
          "The LstmOptions the forward ran with.");
  m.def("layer_norm_lstm_forward", &layer_norm_lstm_forward, "x"_a, "weights"_a, "h0"_a, "c0"_a, "y"_a, "options"_a,
        "cell_options"_a, "taped"_a, "Writes y; returns the tape (with c_n; the rest only if taped).");
  m.def("layer_norm_lstm_backward", &layer_norm_lstm_backward, "tape"_a, "weights"_a, "dy"_a, "dh_n"_a, "dc_n"_a,
        "grads"_a, "dx"_a, "dh0"_a, "dc0"_a, py::kw_only(), "accumulate_dx"_a = false,
        "hidden_grads"_a = py::none(),
        "Adds the weight and layer-norm gradients to grads; writes dh0, dc0, and dx (or adds to it), "
        "and dL/dh_t at every step into hidden_grads (T, B, H) when given.");
}

}  // namespace lstmcore::bindings
