// The LSTM passes (plain, peephole, coupled and coupled-with-peepholes cells, fixed or
// general): lstm_forward returns an LstmTape the core owns, lstm_backward takes it back.
//
// Weights and their gradients come as _core.LstmWeights (references, no copies), the
// cell and its regularizers as _core.LstmOptions; the tape keeps references to the
// forward's x, h0, c0, y and both options objects, which backward reads again.
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "arrays.hpp"
#include "lstm_options.hpp"
#include "lstmcore/lstm_sequence.hpp"
#include "lstmcore/tapes.hpp"
#include "narrow.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

struct BoundLstmTape {
  std::variant<LstmTape<float>, LstmTape<double>> core;
  py::array x, h0, c0, y;
  PassOptions pass;
  LstmCallOptions options;
};

py::object lstm_forward(const py::array& x, const LstmWeights& weights, const py::array& h0, const py::array& c0,
                        const py::array& y, const PassOptions& pass, const LstmCallOptions& cell_options,
                        bool taped) {
  py::object result;
  dispatch_cell<true>(cell_options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Dims d = dims_of(x, weights.weight_hh, K, pass.batch_first);
    const Index width = checked_offset(y, pass.y_offset, d.hidden);
    const auto shape = shape_of(d, pass.reverse, pass.batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto w =
          checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, K);
      auto options = checked_cell_options<Scalar>(cell_options, weights.peephole, py::none(), d);
      const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
      const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
      const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
      auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), true);
      auto bound = std::make_unique<BoundLstmTape>(
          BoundLstmTape{LstmTape<Scalar>(d.steps, d.batch, d.hidden, K, taped, options.zoneout()), x, h0, c0, y,
                        pass, cell_options});
      auto& tape = std::get<LstmTape<Scalar>>(bound->core);
      if (tape.zoneout) options.cell_updates = tape.cell_updates.data();
      Scalar* gates = taped ? tape.gates.data() : nullptr;
      Scalar* cells = taped ? tape.cells.data() : nullptr;
      Scalar* c_n = tape.c_n.data();
      result = py::cast(std::move(bound));
      py::gil_scoped_release release;
      lstmcore::lstm_forward<Scalar, Kind::template type>(shape, sequence(xp, d, d.input), w, options, h0p, c0p,
                                                          sequence(yp, d, width, pass.y_offset), gates, cells, c_n);
    });
  });
  return result;
}

void lstm_backward(const BoundLstmTape& tape, const LstmWeights& weights, const py::array& dy,
                   const py::object& dh_n, const py::object& dc_n, const LstmWeights& grads, const py::array& dx,
                   const py::array& dh0, const py::array& dc0, bool accumulate_dx, const py::object& hidden_grads) {
  const PassOptions& pass = tape.pass;
  dispatch_cell<true>(tape.options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Dims d = dims_of(tape.x, weights.weight_hh, K, pass.batch_first);
    const Index width = checked_offset(tape.y, pass.y_offset, d.hidden);
    const auto shape = shape_of(d, pass.reverse, pass.batch_sizes);
    dispatch(tape.x, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto* core = std::get_if<LstmTape<Scalar>>(&tape.core);
      if (!core) throw py::type_error("expected an LSTM tape of x's dtype");
      if (!core->taped) throw py::value_error("expected a tape from a forward with taped=True, got one without");
      check_tape_dims("LSTM tape", core->steps, core->batch, core->hidden, d);
      const auto w =
          checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, K);
      auto options = checked_cell_options<Scalar>(tape.options, weights.peephole, grads.peephole, d);
      if (core->zoneout) options.cell_updates = const_cast<Scalar*>(core->cell_updates.data());
      const auto g = checked_grads<Scalar>(grads.weight_ih, grads.weight_hh, grads.bias_ih, grads.bias_hh, d, K);
      const auto a = checked_backward_arrays<Scalar>(tape, dy, dh_n, dc_n, dx, dh0, dc0, d, width, d.hidden);
      Scalar* hidden = optional_hidden_grads<Scalar>(hidden_grads, d, d.hidden);
      py::gil_scoped_release release;
      const auto xs = sequence(a.x, d, d.input), dxs = sequence(a.dx, d, d.input);
      const auto ys = sequence(a.y, d, width, pass.y_offset), dys = sequence(a.dy, d, width, pass.y_offset);
      lstmcore::lstm_backward<Scalar, Kind::template type>(shape, xs, w, options, a.h0, a.c0, ys,
                                                           core->gates.data(), core->cells.data(), dys, a.dh_n,
                                                           a.dc_n, dxs, accumulate_dx, g, a.dh0, a.dc0, hidden);
    });
  });
}

// lstm_forward bound to its weights and options, checked once, for a prepared layer
// (narrow.hpp).
NarrowPass lstm_narrow_pass(const LstmWeights& weights, const PassOptions& pass,
                            const LstmCallOptions& given_options, bool taped) {
  if (taped) throw py::value_error("a narrow pass runs without a tape");
  const LstmCallOptions cell_options = held_options(given_options);
  if (!cell_options.recurrent_mask.is_none() || !cell_options.zoneout_h.is_none()) {
    throw py::value_error("a narrow pass runs without training masks (recurrent dropout, zoneout)");
  }
  NarrowPass narrow;
  dispatch_cell<true>(cell_options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Index hidden = matrix_size(weights.weight_hh, "weight_hh", 1);
    const Dims d = weight_dims(matrix_size(weights.weight_ih, "weight_ih", 1), hidden);
    dispatch(weights.weight_hh, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto w =
          checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, K);
      const auto options = checked_cell_options<Scalar>(cell_options, weights.peephole, py::none(), d);
      const auto packed = std::make_shared<const PackedGateWeights<Scalar>>(w, K, hidden, d.input, hidden);
      narrow = narrow_pass_of<Scalar>(pass, d.input, hidden, hidden, hidden);
      // weights and cell_options hold the arrays that w and options point into.
      narrow.run = [weights, cell_options, w, options, packed, form = narrow.form](const NarrowArrays& a) {
        const auto v = narrow_views<Scalar>(form, a);
        lstmcore::lstm_forward<Scalar, Kind::template type>(v.shape, v.x, w, options, v.h0, v.c0, v.y, nullptr,
                                                            nullptr, v.c_n, packed.get());
      };
    });
  });
  return narrow;
}

// A read-only view of one of the tape's buffers, or None where the tape holds none.
// `pick` names the buffer in a tape of either dtype.
template <typename Pick>
py::object tape_view(const py::object& self, Pick pick, bool held, Index width, bool sequence) {
  const auto& tape = self.cast<const BoundLstmTape&>();
  return std::visit(
      [&](const auto& core) -> py::object {
        if (!held) return py::none();
        const auto* data = pick(core).data();
        if (!sequence) return read_only_view(self, data, {core.batch, core.hidden});
        return read_only_view(self, data, {core.steps, core.batch, width ? width : core.hidden});
      },
      tape.core);
}

bool is_taped(const BoundLstmTape& t) {
  return std::visit([](const auto& core) { return core.taped; }, t.core);
}
bool has_zoneout(const BoundLstmTape& t) {
  return std::visit([](const auto& core) { return core.zoneout; }, t.core);
}
Index gate_width(const BoundLstmTape& t) {
  return std::visit([](const auto& core) { return core.gate_blocks * core.hidden; }, t.core);
}

}  // namespace

void register_lstm(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<LstmWeights>(m, "LstmWeights",
                          "An LSTM layer-direction's weights (or their gradients) by name: references to the "
                          "arrays, not copies. peephole: (3, H) for the peephole cell, else None.")
      .def(py::init([](py::array wi, py::array wh, py::array bi, py::array bh, py::object peephole) {
             return LstmWeights{std::move(wi), std::move(wh), std::move(bi), std::move(bh), std::move(peephole)};
           }),
           "weight_ih"_a, "weight_hh"_a, "bias_ih"_a, "bias_hh"_a, "peephole"_a = py::none())
      .def_readonly("weight_ih", &LstmWeights::weight_ih)
      .def_readonly("weight_hh", &LstmWeights::weight_hh)
      .def_readonly("bias_ih", &LstmWeights::bias_ih)
      .def_readonly("bias_hh", &LstmWeights::bias_hh)
      .def_readonly("peephole", &LstmWeights::peephole);
  py::class_<LstmCallOptions>(
      m, "LstmOptions",
      "An LSTM pass's cell ('plain', 'peephole', 'coupled', 'peephole_coupled', or 'general', "
      "'general_peephole', 'general_coupled', 'general_peephole_coupled': those forms with chosen activations and "
      "clip), gate clamps and regularizers (recurrent dropout mask, zoneout masks or inference rate).")
      .def(py::init([](std::string cell, py::object clamps, py::object recurrent_mask, py::object zoneout_h,
                       py::object zoneout_c, double zoneout_rate, py::object activations, double clip) {
             return LstmCallOptions{
                 std::move(cell),      std::move(clamps), std::move(recurrent_mask), std::move(zoneout_h),
                 std::move(zoneout_c), zoneout_rate,      std::move(activations),    clip};
           }),
           py::kw_only(), "cell"_a = "plain", "clamps"_a = py::none(), "recurrent_mask"_a = py::none(),
           "zoneout_h"_a = py::none(), "zoneout_c"_a = py::none(), "zoneout_rate"_a = 0.0,
           "activations"_a = py::none(), "clip"_a = 0.0)
      .def_readonly("cell", &LstmCallOptions::cell)
      .def_readonly("clamps", &LstmCallOptions::clamps)
      .def_readonly("recurrent_mask", &LstmCallOptions::recurrent_mask)
      .def_readonly("zoneout_h", &LstmCallOptions::zoneout_h)
      .def_readonly("zoneout_c", &LstmCallOptions::zoneout_c)
      .def_readonly("zoneout_rate", &LstmCallOptions::zoneout_rate)
      .def_readonly("activations", &LstmCallOptions::activations)
      .def_readonly("clip", &LstmCallOptions::clip);
  py::class_<BoundLstmTape>(m, "LstmTape", "What an LSTM forward recorded for its backward; made by lstm_forward.")
      .def_property_readonly(
          "gates",
          [](const py::object& self) {
            const auto& t = self.cast<const BoundLstmTape&>();
            return tape_view(
                self, [](const auto& c) -> const auto& { return c.gates; }, is_taped(t), gate_width(t), true);
          },
          "(T, B, K*H) read-only activated gates (the general cells: their activation inputs), or None without "
          "a tape.")
      .def_property_readonly(
          "cells",
          [](const py::object& self) {
            return tape_view(
                self, [](const auto& c) -> const auto& { return c.cells; },
                is_taped(self.cast<const BoundLstmTape&>()), 0, true);
          },
          "(T, B, H) read-only c_t, or None without a tape.")
      .def_property_readonly(
          "cell_updates",
          [](const py::object& self) {
            return tape_view(
                self, [](const auto& c) -> const auto& { return c.cell_updates; },
                has_zoneout(self.cast<const BoundLstmTape&>()), 0, true);
          },
          "(T, B, H) read-only c~_t before zoneout, or None without zoneout.")
      .def_property_readonly(
          "c_n",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.c_n; }, true, 0, false);
          },
          "(B, H) read-only: each sequence's last c_t.")
      .def_property_readonly(
          "options", [](const BoundLstmTape& t) { return t.options; }, "The LstmOptions the forward ran with.");
  m.def("lstm_forward", &lstm_forward, "x"_a, "weights"_a, "h0"_a, "c0"_a, "y"_a, "options"_a, "cell_options"_a,
        "taped"_a, "Writes y; returns the tape (with c_n; gates and cells only if taped).");
  m.def("lstm_narrow_pass", &lstm_narrow_pass, "weights"_a, "options"_a, "cell_options"_a, "taped"_a,
        "lstm_forward bound to all but its arrays, for a NarrowStack.");
  m.def("lstm_backward", &lstm_backward, "tape"_a, "weights"_a, "dy"_a, "dh_n"_a, "dc_n"_a, "grads"_a, "dx"_a,
        "dh0"_a, "dc0"_a, py::kw_only(), "accumulate_dx"_a = false, "hidden_grads"_a = py::none(),
        "Adds the weight gradients to grads; writes dh0, dc0, and dx (or adds to it: accumulate_dx), "
        "and dL/dh_t at every step into hidden_grads (T, B, H) when given.");
}

}  // namespace lstmcore::bindings
