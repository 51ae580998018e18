// The projected LSTM passes (h = (o * tanh(c)) W_hr^T): projected_lstm_forward returns a
// ProjectedLstmTape the core owns, projected_lstm_backward takes it back.
//
// Weights come as _core.ProjectedLstmWeights, the cell and clamps as _core.LstmOptions
// (the projected LSTM takes no recurrent dropout or zoneout); the tape keeps references to
// the forward's x, h0, c0, y and both options objects.
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "arrays.hpp"
#include "lstm_options.hpp"
#include "lstmcore/projected_lstm_sequence.hpp"
#include "lstmcore/tapes.hpp"
#include "narrow.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

// LstmWeights with weight_hh (K*H, P) and the projection weight_hr (P, H).
struct ProjectedLstmWeights {
  py::array weight_ih, weight_hh, bias_ih, bias_hh, weight_hr;
  py::object peephole;
};

struct BoundProjectedLstmTape {
  std::variant<ProjectedLstmTape<float>, ProjectedLstmTape<double>> core;
  py::array x, h0, c0, y;
  PassOptions pass;
  LstmCallOptions options;
};

template <typename Scalar>
LstmOptions<Scalar> checked_projected_options(const LstmCallOptions& o, const py::object& peephole,
                                              const py::object& peephole_grad, const Dims& d) {
  const auto options = checked_cell_options<Scalar>(o, peephole, peephole_grad, d);
  if (options.recurrent_mask || options.zoneout())
    throw py::value_error("the projected LSTM takes no recurrent_mask or zoneout");
  return options;
}

py::object projected_lstm_forward(const py::array& x, const ProjectedLstmWeights& weights, const py::array& h0,
                                  const py::array& c0, const py::array& y, const PassOptions& pass,
                                  const LstmCallOptions& cell_options, bool taped) {
  py::object result;
  dispatch_cell<false>(cell_options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    Index P = 0;
    const Dims d = projected_dims_of(x, weights.weight_hr, P, pass.batch_first);
    const Index width = checked_offset(y, pass.y_offset, P);
    const auto shape = shape_of(d, pass.reverse, pass.batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto w =
          checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, K, P);
      const auto options = checked_projected_options<Scalar>(cell_options, weights.peephole, py::none(), d);
      const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
      const auto* hrp = checked<Scalar>(weights.weight_hr, "weight_hr", {P, d.hidden}, false);
      const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, P}, false);
      const auto* c0p = checked<Scalar>(c0, "c0", {d.batch, d.hidden}, false);
      auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), true);
      auto bound = std::make_unique<BoundProjectedLstmTape>(BoundProjectedLstmTape{
          ProjectedLstmTape<Scalar>(d.steps, d.batch, d.hidden, K, taped), x, h0, c0, y, pass, cell_options});
      auto& tape = std::get<ProjectedLstmTape<Scalar>>(bound->core);
      Scalar* gates = taped ? tape.gates.data() : nullptr;
      Scalar* cells = taped ? tape.cells.data() : nullptr;
      Scalar* cell_out = taped ? tape.cell_out.data() : nullptr;
      Scalar* c_n = tape.c_n.data();
      result = py::cast(std::move(bound));
      py::gil_scoped_release release;
      const auto xs = sequence(xp, d, d.input);
      const auto ys = sequence(yp, d, width, pass.y_offset);
      lstmcore::projected_lstm_forward<Scalar, Kind::template type>(shape, P, xs, w, hrp, options, h0p, c0p, ys,
                                                                    gates, cells, cell_out, c_n);
    });
  });
  return result;
}

// projected_lstm_forward bound to its weights and options, checked once, for a prepared
// layer (narrow.hpp).
NarrowPass projected_lstm_narrow_pass(const ProjectedLstmWeights& weights, const PassOptions& pass,
                                      const LstmCallOptions& given_options, bool taped) {
  if (taped) throw py::value_error("a narrow pass runs without a tape");
  const LstmCallOptions cell_options = held_options(given_options);
  NarrowPass narrow;
  dispatch_cell<false>(cell_options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Index P = matrix_size(weights.weight_hr, "weight_hr", 0);
    const Index H = matrix_size(weights.weight_hr, "weight_hr", 1);
    const Dims d = weight_dims(matrix_size(weights.weight_ih, "weight_ih", 1), H);
    if (P < 1) throw py::value_error("expected a projection size of at least 1");
    dispatch(weights.weight_hh, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto w =
          checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, K, P);
      const auto options = checked_projected_options<Scalar>(cell_options, weights.peephole, py::none(), d);
      const auto* hr = checked<Scalar>(weights.weight_hr, "weight_hr", {P, H}, false);
      const auto packed = std::make_shared<const PackedGateWeights<Scalar>>(w, K, H, d.input, P);
      narrow = narrow_pass_of<Scalar>(pass, d.input, H, P, H);
      // weights and cell_options hold the arrays that w, hr and options point into.
      narrow.run = [weights, cell_options, w, hr, options, P, packed, form = narrow.form](const NarrowArrays& a) {
        const auto v = narrow_views<Scalar>(form, a);
        lstmcore::projected_lstm_forward<Scalar, Kind::template type>(
            v.shape, P, v.x, w, hr, options, v.h0, v.c0, v.y, nullptr, nullptr, nullptr, v.c_n, packed.get());
      };
    });
  });
  return narrow;
}

void projected_lstm_backward(const BoundProjectedLstmTape& tape, const ProjectedLstmWeights& weights,
                             const py::array& dy, const py::object& dh_n, const py::object& dc_n,
                             const ProjectedLstmWeights& grads, const py::array& dx, const py::array& dh0,
                             const py::array& dc0, bool accumulate_dx, const py::object& hidden_grads) {
  const PassOptions& pass = tape.pass;
  dispatch_cell<false>(tape.options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    Index P = 0;
    const Dims d = projected_dims_of(tape.x, weights.weight_hr, P, pass.batch_first);
    const Index width = checked_offset(tape.y, pass.y_offset, P);
    const auto shape = shape_of(d, pass.reverse, pass.batch_sizes);
    dispatch(tape.x, [&](auto zero) {
      using Scalar = decltype(zero);
      const auto* core = std::get_if<ProjectedLstmTape<Scalar>>(&tape.core);
      if (!core) throw py::type_error("expected a projected LSTM tape of x's dtype");
      if (!core->taped) throw py::value_error("expected a tape from a forward with taped=True, got one without");
      check_tape_dims("projected LSTM tape", core->steps, core->batch, core->hidden, d);
      const auto w =
          checked_weights<Scalar>(weights.weight_ih, weights.weight_hh, weights.bias_ih, weights.bias_hh, d, K, P);
      const auto options = checked_projected_options<Scalar>(tape.options, weights.peephole, grads.peephole, d);
      const auto g = checked_grads<Scalar>(grads.weight_ih, grads.weight_hh, grads.bias_ih, grads.bias_hh, d, K, P);
      const auto* hrp = checked<Scalar>(weights.weight_hr, "weight_hr", {P, d.hidden}, false);
      auto* ghrp = checked<Scalar>(grads.weight_hr, "grad weight_hr", {P, d.hidden}, true);
      const auto a = checked_backward_arrays<Scalar>(tape, dy, dh_n, dc_n, dx, dh0, dc0, d, width, P);
      Scalar* hidden = optional_hidden_grads<Scalar>(hidden_grads, d, P);
      py::gil_scoped_release release;
      const auto xs = sequence(a.x, d, d.input), dxs = sequence(a.dx, d, d.input);
      const auto ys = sequence(a.y, d, width, pass.y_offset), dys = sequence(a.dy, d, width, pass.y_offset);
      lstmcore::projected_lstm_backward<Scalar, Kind::template type>(
          shape, P, xs, w, hrp, options, a.h0, a.c0, ys, core->gates.data(), core->cells.data(),
          core->cell_out.data(), dys, a.dh_n, a.dc_n, dxs, accumulate_dx, g, ghrp, a.dh0, a.dc0, hidden);
    });
  });
}

// A read-only view of the buffer `pick` names in the tape, or None where it holds none.
template <typename Pick>
py::object tape_view(const py::object& self, Pick pick, bool sequence) {
  const auto& tape = self.cast<const BoundProjectedLstmTape&>();
  return std::visit(
      [&](const auto& core) -> py::object {
        if (sequence && !core.taped) return py::none();
        const auto* data = pick(core).data();
        if (!sequence) return read_only_view(self, data, {core.batch, core.hidden});
        const Index width = pick(core).data() == core.gates.data() ? core.gate_blocks * core.hidden : core.hidden;
        return read_only_view(self, data, {core.steps, core.batch, width});
      },
      tape.core);
}

}  // namespace

void register_projected_lstm(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<ProjectedLstmWeights>(m, "ProjectedLstmWeights",
                                   "A projected LSTM layer-direction's weights (or their gradients) by name: "
                                   "references to the arrays, not copies.")
      .def(py::init([](py::array wi, py::array wh, py::array bi, py::array bh, py::array whr, py::object peephole) {
             return ProjectedLstmWeights{std::move(wi), std::move(wh),  std::move(bi),
                                         std::move(bh), std::move(whr), std::move(peephole)};
           }),
           "weight_ih"_a, "weight_hh"_a, "bias_ih"_a, "bias_hh"_a, "weight_hr"_a, "peephole"_a = py::none())
      .def_readonly("weight_ih", &ProjectedLstmWeights::weight_ih)
      .def_readonly("weight_hh", &ProjectedLstmWeights::weight_hh)
      .def_readonly("bias_ih", &ProjectedLstmWeights::bias_ih)
      .def_readonly("bias_hh", &ProjectedLstmWeights::bias_hh)
      .def_readonly("weight_hr", &ProjectedLstmWeights::weight_hr)
      .def_readonly("peephole", &ProjectedLstmWeights::peephole);
  py::class_<BoundProjectedLstmTape>(m, "ProjectedLstmTape",
                                     "What a projected LSTM forward recorded for its backward; made by "
                                     "projected_lstm_forward.")
      .def_property_readonly(
          "gates",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.gates; }, true);
          },
          "(T, B, K*H) read-only activated gates, or None without a tape.")
      .def_property_readonly(
          "cells",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.cells; }, true);
          },
          "(T, B, H) read-only c_t, or None without a tape.")
      .def_property_readonly(
          "cell_out",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.cell_out; }, true);
          },
          "(T, B, H) read-only o * tanh(c_t) before the projection, or None without a tape.")
      .def_property_readonly(
          "c_n",
          [](const py::object& self) {
            return tape_view(self, [](const auto& c) -> const auto& { return c.c_n; }, false);
          },
          "(B, H) read-only: each sequence's last c_t.")
      .def_property_readonly(
          "options", [](const BoundProjectedLstmTape& t) { return t.options; },
          "The LstmOptions the forward ran with.");
  m.def("projected_lstm_forward", &projected_lstm_forward, "x"_a, "weights"_a, "h0"_a, "c0"_a, "y"_a, "options"_a,
        "cell_options"_a, "taped"_a, "Writes y; returns the tape (with c_n; the rest only if taped).");
  m.def("projected_lstm_narrow_pass", &projected_lstm_narrow_pass, "weights"_a, "options"_a, "cell_options"_a,
        "taped"_a, "projected_lstm_forward bound to all but its arrays, for a NarrowStack.");
  m.def("projected_lstm_backward", &projected_lstm_backward, "tape"_a, "weights"_a, "dy"_a, "dh_n"_a, "dc_n"_a,
        "grads"_a, "dx"_a, "dh0"_a, "dc0"_a, py::kw_only(), "accumulate_dx"_a = false,
        "hidden_grads"_a = py::none(),
        "Adds the weight gradients to grads; writes dh0, dc0, and dx (or adds to it: accumulate_dx), "
        "and dL/dh_t at every step into hidden_grads (T, B, P) when given.");
}

}  // namespace lstmcore::bindings
