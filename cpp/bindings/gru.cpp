// The GRU passes: gru_forward returns a GruTape the core owns, gru_backward takes it back.
//
// Weights and their gradients come as _core.GruWeights (references to the caller's
// arrays, no copies); the tape keeps references to the forward's x, h0 and y and its
// PassOptions, which backward reads again; the core's tape knows whether the reset gate
// came after W_hn (PyTorch's form) or before it, so backward takes the forward's form; the
// bound tape keeps the forward's activations and clip (None, 0: the default kernel).
#include <memory>
#include <type_traits>
#include <utility>
#include <variant>

#include "activation_options.hpp"
#include "arrays.hpp"
#include "lstmcore/gru.hpp"
#include "lstmcore/tapes.hpp"
#include "narrow.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

// weight_ih (3H, I), weight_hh (3H, H), bias_ih and bias_hh (3H,): parameters, or their
// gradients (written by backward).
struct GruWeights {
  py::array weight_ih, weight_hh, bias_ih, bias_hh;
};

// A forward's tape as Python holds it: the core's tape in the forward's dtype, and the
// caller's arrays backward reads again.
struct BoundGruTape {
  std::variant<GruTape<float>, GruTape<double>> core;
  py::array x, h0, y;
  PassOptions options;
  bool general = false;  // chosen activations or clip: GeneralGruActivations
  CellActivations acts;
};

// The forward or backward of one form and activation policy.
template <bool ResetAfter, typename Run>
void with_activations(bool general, const CellActivations& acts, Run&& run) {
  if (general) {
    run(std::integral_constant<bool, ResetAfter>{}, GeneralGruActivations{acts});
  } else {
    run(std::integral_constant<bool, ResetAfter>{}, DefaultGruActivations{});
  }
}

template <typename Run>
void with_form(bool reset_after, bool general, const CellActivations& acts, Run&& run) {
  if (reset_after) {
    with_activations<true>(general, acts, run);
  } else {
    with_activations<false>(general, acts, run);
  }
}

struct GruCall {
  Dims d;
  Index width;  // y's features: H, or 2H for both directions in one array
  SequenceShape shape;
};

GruCall checked_call(const py::array& x, const GruWeights& w, const py::array& y, const PassOptions& o) {
  const Dims d = dims_of(x, w.weight_hh, 3, o.batch_first);
  const Index width = checked_offset(y, o.y_offset, d.hidden);
  return {d, width, shape_of(d, o.reverse, o.batch_sizes)};
}

template <typename Scalar>
GatedWeights<Scalar> weights_of(const GruWeights& w, const Dims& d) {
  return checked_weights<Scalar>(w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, d, 3);
}

// Runs the forward; returns its tape (taped) or None (inference: the kernel writes only y).
py::object gru_forward(const py::array& x, const GruWeights& weights, const py::array& h0, const py::array& y,
                       const PassOptions& options, bool taped, bool reset_after, const py::object& activations,
                       double clip) {
  const GruCall call = checked_call(x, weights, y, options);
  const CellActivations acts = checked_activations(activations, clip);
  const bool general = !activations.is_none() || clip != 0.0;
  const Dims& d = call.d;
  py::object result = py::none();
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto w = weights_of<Scalar>(weights, d);
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    auto* yp = checked<Scalar>(y, "y", sequence_shape(d, call.width), true);
    Scalar* gates = nullptr;
    if (taped) {
      auto bound = std::make_unique<BoundGruTape>(
          BoundGruTape{GruTape<Scalar>(d.steps, d.batch, d.hidden, reset_after), x, h0, y, options, general, acts});
      gates = std::get<GruTape<Scalar>>(bound->core).gates.data();
      result = py::cast(std::move(bound));
    }
    py::gil_scoped_release release;
    const auto xs = sequence(xp, d, d.input);
    const auto ys = sequence(yp, d, call.width, options.y_offset);
    with_form(reset_after, general, acts, [&](auto form, const auto& policy) {
      lstmcore::gru_forward<Scalar, decltype(form)::value>(call.shape, xs, w, h0p, ys, gates, policy);
    });
  });
  return result;
}

// gru_forward bound to its weights and options, checked once, for a prepared layer
// (narrow.hpp).
NarrowPass gru_narrow_pass(const GruWeights& weights, const PassOptions& options, bool taped, bool reset_after,
                           const py::object& activations, double clip) {
  if (taped) throw py::value_error("a narrow pass runs without a tape");
  const CellActivations acts = checked_activations(activations, clip);
  const bool general = !activations.is_none() || clip != 0.0;
  return single_state_narrow_pass(
      weights, options, 3,
      [reset_after, general, acts](auto zero, const auto& v, const auto& w, const auto* packed) {
        using Scalar = decltype(zero);
        with_form(reset_after, general, acts, [&](auto f, const auto& policy) {
          lstmcore::gru_forward<Scalar, decltype(f)::value>(v.shape, v.x, w, v.h0, v.y, nullptr, policy, packed);
        });
      });
}

// Adds the weight gradients to `grads`, writes dh0 and dx (or adds to dx, accumulate_dx),
// and hidden_grads when given.
void gru_backward(const BoundGruTape& tape, const GruWeights& weights, const py::array& dy, const py::object& dh_n,
                  const GruWeights& grads, const py::array& dx, const py::array& dh0, bool accumulate_dx,
                  const py::object& hidden_grads) {
  const PassOptions& options = tape.options;
  const GruCall call = checked_call(tape.x, weights, tape.y, options);
  const Dims& d = call.d;
  dispatch(tape.x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto* core = std::get_if<GruTape<Scalar>>(&tape.core);
    if (!core) throw py::type_error("expected a GRU tape of x's dtype");
    check_tape_dims("GRU tape", core->steps, core->batch, core->hidden, d);
    const auto w = weights_of<Scalar>(weights, d);
    const auto g = checked_grads<Scalar>(grads.weight_ih, grads.weight_hh, grads.bias_ih, grads.bias_hh, d, 3);
    const auto a = checked_hidden_backward_arrays<Scalar>(tape, dy, dh_n, dx, dh0, hidden_grads, d, call.width);
    py::gil_scoped_release release;
    const auto xs = sequence(a.x, d, d.input), dxs = sequence(a.dx, d, d.input);
    const Index offset = options.y_offset;
    const auto ys = sequence(a.y, d, call.width, offset), dys = sequence(a.dy, d, call.width, offset);
    const Scalar* gates = core->gates.data();
    with_form(core->reset_after, tape.general, tape.acts, [&](auto form, const auto& policy) {
      lstmcore::gru_backward<Scalar, decltype(form)::value>(call.shape, xs, w, a.h0, ys, gates, dys, a.dh_n, dxs,
                                                            accumulate_dx, g, a.dh0, a.hidden_grads, policy);
    });
  });
}

// The gates tape as a read-only (T, B, 4H) view that keeps the tape alive.
py::array gates_of(const py::object& self) {
  const auto& tape = self.cast<const BoundGruTape&>();
  return std::visit(
      [&](const auto& core) {
        return read_only_view(self, core.gates.data(), {core.steps, core.batch, core.width()});
      },
      tape.core);
}

}  // namespace

void register_gru(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<GruWeights>(m, "GruWeights",
                         "A GRU layer-direction's weights (or their gradients) by name: references to the "
                         "arrays, not copies.")
      .def(py::init([](py::array wi, py::array wh, py::array bi, py::array bh) {
             return GruWeights{std::move(wi), std::move(wh), std::move(bi), std::move(bh)};
           }),
           "weight_ih"_a, "weight_hh"_a, "bias_ih"_a, "bias_hh"_a)
      .def_readonly("weight_ih", &GruWeights::weight_ih)
      .def_readonly("weight_hh", &GruWeights::weight_hh)
      .def_readonly("bias_ih", &GruWeights::bias_ih)
      .def_readonly("bias_hh", &GruWeights::bias_hh);
  py::class_<BoundGruTape>(m, "GruTape", "What a GRU forward recorded for its backward; made by gru_forward.")
      .def_property_readonly("gates", &gates_of,
                             "(T, B, 4H) read-only: r, z, n (with activations or clip: their pre-activations) "
                             "and h_{t-1} W_hn^T + b_hn (reset_after) or r * h_{t-1}.")
      .def_property_readonly(
          "reset_after",
          [](const BoundGruTape& tape) {
            return std::visit([](const auto& core) { return core.reset_after; }, tape.core);
          },
          "Whether the forward applied the reset gate after W_hn (PyTorch's form) or before it.");
  m.def("gru_forward", &gru_forward, "x"_a, "weights"_a, "h0"_a, "y"_a, "options"_a, "taped"_a, py::kw_only(),
        "reset_after"_a = true, "activations"_a = py::none(), "clip"_a = 0.0,
        "Writes y; returns the tape backward needs (taped) or None. reset_after=False: the reset gate "
        "multiplies h_{t-1} before W_hn (Cho et al.; ONNX's linear_before_reset=0). activations: None or "
        "[gate, candidate, output] as (name, alpha, beta), the output unused; clip: 0 for none.");
  m.def("gru_narrow_pass", &gru_narrow_pass, "weights"_a, "options"_a, "taped"_a, py::kw_only(),
        "reset_after"_a = true, "activations"_a = py::none(), "clip"_a = 0.0,
        "gru_forward bound to all but its arrays, for a NarrowStack.");
  m.def("gru_backward", &gru_backward, "tape"_a, "weights"_a, "dy"_a, "dh_n"_a, "grads"_a, "dx"_a, "dh0"_a,
        py::kw_only(), "accumulate_dx"_a = false, "hidden_grads"_a = py::none(),
        "Adds the weight gradients to grads; writes dh0, and dx (or adds to it: accumulate_dx), and dL/dh_t at "
        "every step into hidden_grads (T, B, H) when given.");
}

}  // namespace lstmcore::bindings
