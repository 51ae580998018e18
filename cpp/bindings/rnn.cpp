// The vanilla RNN passes: rnn_forward returns an RnnTape, rnn_backward takes it back.
//
// Weights and their gradients come as _core.RnnWeights (references to the caller's
// arrays, no copies); the nonlinearity by name, chosen here once per call so that the
// core's loops are compiled for each: "tanh" and "relu" without clip run the fused
// kernels, any other activation or a clip ChosenNonlinearity. The tape keeps references to
// the forward's x, h0 and y, its PassOptions, nonlinearity and clip, which backward reads
// again, and (a chosen one) the core's buffer of pre-activations.
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "activation_options.hpp"
#include "arrays.hpp"
#include "lstmcore/rnn.hpp"
#include "lstmcore/tapes.hpp"
#include "narrow.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

// weight_ih (H, I), weight_hh (H, H), bias_ih and bias_hh (H,): parameters, or their
// gradients (written by backward).
struct RnnWeights {
  py::array weight_ih, weight_hh, bias_ih, bias_hh;
};

// The nonlinearity as Python gives it: a name, or (name, alpha, beta); and clip (0: none).
struct RnnNonlinearity {
  py::object spec;
  double clip = 0.0;
  std::string fused;  // "tanh" or "relu" for the fused kernels, else empty
  Activation chosen;
};

RnnNonlinearity checked_nonlinearity(const py::object& spec, double clip) {
  RnnNonlinearity n{spec, checked_activations(py::none(), clip).clip, "", {}};
  if (py::isinstance<py::str>(spec)) {
    const auto name = py::cast<std::string>(spec);
    if ((name == "tanh" || name == "relu") && clip == 0.0) {
      n.fused = name;
      return n;
    }
    n.chosen = checked_activation(py::make_tuple(name, 0.2, 0.5));
  } else {
    n.chosen = checked_activation(spec);
  }
  return n;
}

struct BoundRnnTape {
  std::variant<RnnTape<float>, RnnTape<double>> core;
  py::array x, h0, y;
  PassOptions options;
  RnnNonlinearity nonlinearity;
};

struct RnnCall {
  Dims d;
  Index width;  // y's features: H, or 2H for both directions in one array
  SequenceShape shape;
};

RnnCall checked_call(const py::array& x, const RnnWeights& w, const py::array& y, const PassOptions& o) {
  const Dims d = dims_of(x, w.weight_hh, 1, o.batch_first);
  const Index width = checked_offset(y, o.y_offset, d.hidden);
  return {d, width, shape_of(d, o.reverse, o.batch_sizes)};
}

template <typename Scalar>
GatedWeights<Scalar> weights_of(const RnnWeights& w, const Dims& d) {
  return checked_weights<Scalar>(w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, d, 1);
}

// Calls fn(nonlinearity) with TanhNonlinearity, ReluNonlinearity or ChosenNonlinearity.
template <typename Scalar, typename Fn>
void dispatch_nonlinearity(const RnnNonlinearity& n, Fn&& fn) {
  if (n.fused == "tanh") return fn(TanhNonlinearity{});
  if (n.fused == "relu") return fn(ReluNonlinearity{});
  return fn(ChosenNonlinearity<Scalar>(n.chosen, n.clip));
}

// Runs the forward; returns its tape (taped) or None (inference).
py::object rnn_forward(const py::array& x, const RnnWeights& weights, const py::array& h0, const py::array& y,
                       const PassOptions& options, const py::object& nonlinearity, bool taped, double clip) {
  const RnnCall call = checked_call(x, weights, y, options);
  const Dims& d = call.d;
  const RnnNonlinearity chosen = checked_nonlinearity(nonlinearity, clip);
  py::object result = py::none();
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto w = weights_of<Scalar>(weights, d);
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    auto* yp = checked<Scalar>(y, "y", sequence_shape(d, call.width), true);
    Scalar* pre = nullptr;
    if (taped) {
      auto bound = std::make_unique<BoundRnnTape>(BoundRnnTape{
          RnnTape<Scalar>(d.steps, d.batch, d.hidden, chosen.fused.empty()), x, h0, y, options, chosen});
      pre = std::get<RnnTape<Scalar>>(bound->core).pre.data();
      result = py::cast(std::move(bound));
    }
    dispatch_nonlinearity<Scalar>(chosen, [&](const auto& act) {
      py::gil_scoped_release release;
      lstmcore::rnn_forward<Scalar>(call.shape, sequence(xp, d, d.input), w, h0p,
                                    sequence(yp, d, call.width, options.y_offset), act, pre);
    });
  });
  return result;
}

// rnn_forward bound to its weights and options, checked once, for a prepared layer
// (narrow.hpp).
NarrowPass rnn_narrow_pass(const RnnWeights& weights, const PassOptions& options, const py::object& nonlinearity,
                           bool taped, double clip) {
  if (taped) throw py::value_error("a narrow pass runs without a tape");
  const RnnNonlinearity chosen = checked_nonlinearity(nonlinearity, clip);
  return single_state_narrow_pass(
      weights, options, 1, [chosen](auto zero, const auto& v, const auto& w, const auto* packed) {
        using Scalar = decltype(zero);
        dispatch_nonlinearity<Scalar>(chosen, [&](const auto& act) {
          lstmcore::rnn_forward<Scalar>(v.shape, v.x, w, v.h0, v.y, act, nullptr, packed);
        });
      });
}

// Adds the weight gradients to `grads`, writes dh0 and dx (or adds to dx, accumulate_dx).
void rnn_backward(const BoundRnnTape& tape, const RnnWeights& weights, const py::array& dy, const py::object& dh_n,
                  const RnnWeights& grads, const py::array& dx, const py::array& dh0, bool accumulate_dx,
                  const py::object& hidden_grads) {
  const PassOptions& options = tape.options;
  const RnnCall call = checked_call(tape.x, weights, tape.y, options);
  const Dims& d = call.d;
  dispatch(tape.x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto* core = std::get_if<RnnTape<Scalar>>(&tape.core);
    if (!core) throw py::type_error("expected an RNN tape of x's dtype");
    check_tape_dims("RNN tape", core->steps, core->batch, core->hidden, d);
    const auto w = weights_of<Scalar>(weights, d);
    const auto g = checked_grads<Scalar>(grads.weight_ih, grads.weight_hh, grads.bias_ih, grads.bias_hh, d, 1);
    const auto a = checked_hidden_backward_arrays<Scalar>(tape, dy, dh_n, dx, dh0, hidden_grads, d, call.width);
    dispatch_nonlinearity<Scalar>(tape.nonlinearity, [&](const auto& act) {
      py::gil_scoped_release release;
      const auto xs = sequence(a.x, d, d.input), dxs = sequence(a.dx, d, d.input);
      const Index offset = options.y_offset;
      const auto ys = sequence(a.y, d, call.width, offset), dys = sequence(a.dy, d, call.width, offset);
      lstmcore::rnn_backward<Scalar>(call.shape, xs, w, a.h0, ys, dys, a.dh_n, dxs, accumulate_dx, g, a.dh0,
                                     a.hidden_grads, act, core->pre.data());
    });
  });
}

// h_t, this direction's columns of y, as a read-only time-major (T, B, H) view that keeps
// the tape (and so y) alive: the RNN's one trace.
py::array hidden_of(const py::object& self) {
  const auto& tape = self.cast<const BoundRnnTape&>();
  const Index hidden = std::visit([](const auto& core) { return core.hidden; }, tape.core);
  const Dims d = sequence_dims(tape.x, hidden, tape.options.batch_first);
  const Index width = tape.y.shape(tape.y.ndim() - 1);
  const py::ssize_t item = tape.y.itemsize();
  std::vector<py::ssize_t> strides{d.batch * width * item, width * item, item};
  if (d.batch_first) strides = {width * item, d.steps * width * item, item};
  const auto* data = static_cast<const char*>(tape.y.data()) + tape.options.y_offset * item;
  py::array view(tape.y.dtype(), {d.steps, d.batch, d.hidden}, strides, data, self);
  view.attr("setflags")(py::arg("write") = false);
  return view;
}

}  // namespace

void register_rnn(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<RnnWeights>(m, "RnnWeights",
                         "An RNN layer-direction's weights (or their gradients) by name: references to the "
                         "arrays, not copies.")
      .def(py::init([](py::array wi, py::array wh, py::array bi, py::array bh) {
             return RnnWeights{std::move(wi), std::move(wh), std::move(bi), std::move(bh)};
           }),
           "weight_ih"_a, "weight_hh"_a, "bias_ih"_a, "bias_hh"_a)
      .def_readonly("weight_ih", &RnnWeights::weight_ih)
      .def_readonly("weight_hh", &RnnWeights::weight_hh)
      .def_readonly("bias_ih", &RnnWeights::bias_ih)
      .def_readonly("bias_hh", &RnnWeights::bias_hh);
  py::class_<BoundRnnTape>(m, "RnnTape", "What an RNN forward recorded for its backward; made by rnn_forward.")
      .def_property_readonly("hidden", &hidden_of, "(T, B, H) read-only: h_t, this direction's columns of y.")
      .def_property_readonly(
          "nonlinearity", [](const BoundRnnTape& t) { return t.nonlinearity.spec; },
          "The forward's nonlinearity, as it was given.")
      .def_property_readonly(
          "clip", [](const BoundRnnTape& t) { return t.nonlinearity.clip; }, "The forward's clip (0: none).");
  m.def("rnn_forward", &rnn_forward, "x"_a, "weights"_a, "h0"_a, "y"_a, "options"_a, "nonlinearity"_a, "taped"_a,
        py::kw_only(), "clip"_a = 0.0,
        "Writes y; returns the tape backward needs (taped) or None. nonlinearity: a name (\"tanh\", \"relu\", "
        "\"sigmoid\", \"hard_sigmoid\", \"linear\", \"softsign\") or (name, alpha, beta); clip > 0 bounds each "
        "pre-activation to [-clip, clip] (0: none). tanh and relu without clip run the fused kernels.");
  m.def("rnn_narrow_pass", &rnn_narrow_pass, "weights"_a, "options"_a, "nonlinearity"_a, "taped"_a, py::kw_only(),
        "clip"_a = 0.0, "rnn_forward bound to all but its arrays, for a NarrowStack.");
  m.def("rnn_backward", &rnn_backward, "tape"_a, "weights"_a, "dy"_a, "dh_n"_a, "grads"_a, "dx"_a, "dh0"_a,
        py::kw_only(), "accumulate_dx"_a = false, "hidden_grads"_a = py::none(),
        "Adds the weight gradients to grads; writes dh0, and dx (or adds to it: accumulate_dx), and dL/dh_t at "
        "every step into hidden_grads (T, B, H) when given.");
}

}  // namespace lstmcore::bindings
