// What the LSTM families share at the binding: the cell kind as a template argument, and
// the bound LstmWeights and LstmOptions (_core.LstmOptions: cell, clamps, recurrent dropout,
// zoneout) and their check into the core's LstmOptions.
#pragma once

#include <string>
#include <utility>

#include "activation_options.hpp"
#include "arrays.hpp"
#include "lstmcore/coupled_lstm_cell.hpp"
#include "lstmcore/general_lstm_cell.hpp"
#include "lstmcore/lstm_cell.hpp"
#include "lstmcore/lstm_options.hpp"
#include "lstmcore/peephole_coupled_lstm_cell.hpp"
#include "lstmcore/peephole_lstm_cell.hpp"

namespace lstmcore::bindings {

// A cell kind as a template argument: CellKind<LstmCell>::type<Scalar>.
template <template <typename> class C>
struct CellKind {
  template <typename Scalar>
  using type = C<Scalar>;
};

// The cells by name: the fixed ones and the general ones (activations and clip chosen at
// run time) of the same forms. Passes that offer only the plain general cell (the projected
// LSTM) take kGeneralForms false, so that they do not compile the other three.
template <bool kGeneralForms, typename Fn>
void dispatch_cell(const std::string& cell, Fn&& fn) {
  if (cell == "plain") return fn(CellKind<LstmCell>{});
  if (cell == "peephole") return fn(CellKind<PeepholeLstmCell>{});
  if (cell == "coupled") return fn(CellKind<CoupledLstmCell>{});
  if (cell == "peephole_coupled") return fn(CellKind<PeepholeCoupledLstmCell>{});
  if (cell == "general") return fn(CellKind<GeneralLstmCell>{});
  if constexpr (kGeneralForms) {
    if (cell == "general_peephole") return fn(CellKind<GeneralPeepholeLstmCell>{});
    if (cell == "general_coupled") return fn(CellKind<GeneralCoupledLstmCell>{});
    if (cell == "general_peephole_coupled") return fn(CellKind<GeneralPeepholeCoupledLstmCell>{});
    throw py::value_error(
        "expected cell 'plain', 'peephole', 'coupled', 'peephole_coupled', 'general', 'general_peephole', "
        "'general_coupled' or 'general_peephole_coupled', got '" +
        cell + "'");
  }
  throw py::value_error("expected cell 'plain', 'peephole', 'coupled', 'peephole_coupled' or 'general', got '" +
                        cell + "'");
}

// What a cell's name says (a name dispatch_cell took).
struct CellForm {
  bool peepholes, coupled, general;
};

inline CellForm form_of(const std::string& cell) {
  const auto has = [&](const char* word) { return cell.find(word) != std::string::npos; };
  return {has("peephole"), has("coupled"), has("general")};
}

// The peephole weights (3, H; coupled: 2, H) for the peephole cells, absent for the
// others; the clamps None or a list of 4 entries, each an (H,) array or None.
template <typename Scalar>
LstmOptions<Scalar> checked_options(const std::string& cell, const py::object& peephole,
                                    const py::object& peephole_grad, const py::object& clamps, const Dims& d) {
  LstmOptions<Scalar> options;
  const CellForm form = form_of(cell);
  const bool peepholes = form.peepholes, coupled = form.coupled;
  if (peepholes == peephole.is_none())
    throw py::value_error("the peephole cells, and only they, take peephole weights");
  // p_i, p_f, p_o; the coupled cell has no forget gate, so no p_f.
  const Index rows = coupled ? 2 : 3;
  if (!peephole.is_none())
    options.peephole = checked_optional<Scalar>(peephole, "peephole", {rows, d.hidden}, false);
  if (!peephole_grad.is_none()) {
    if (peephole.is_none()) throw py::value_error("peephole_grad without peephole weights");
    options.peephole_grad = checked_optional<Scalar>(peephole_grad, "grad peephole", {rows, d.hidden}, true);
  }
  if (clamps.is_none()) return options;
  const auto held = py::cast<py::list>(clamps);
  if (held.size() != 4) throw py::value_error("expected 4 clamps (input, forget, candidate, output)");
  for (int gate = 0; gate < 4; ++gate) {
    if (held[gate].is_none()) continue;
    if (coupled && gate == kClampForget)
      throw py::value_error("the coupled cell has no forget gate of its own to clamp");
    options.clamps[gate] = checked_optional<Scalar>(held[gate], "clamp", {d.hidden}, false);
  }
  return options;
}

// Recurrent dropout's (B, H) mask and zoneout's (T, B, H) masks or inference rate. The
// tape of cell updates zoneout needs is the core's (LstmTape), set by the caller.
template <typename Scalar>
void add_regularizers(LstmOptions<Scalar>& options, const py::object& recurrent_mask, const py::object& zoneout_h,
                      const py::object& zoneout_c, double zoneout_rate, const Dims& d) {
  if (!recurrent_mask.is_none())
    options.recurrent_mask = checked_optional<Scalar>(recurrent_mask, "recurrent_mask", {d.batch, d.hidden}, false);
  if (zoneout_h.is_none() != zoneout_c.is_none())
    throw py::value_error("zoneout needs both masks, zoneout_h and zoneout_c, or neither");
  if (!(zoneout_rate >= 0.0 && zoneout_rate < 1.0)) throw py::value_error("zoneout_rate must be in [0, 1)");
  if (!zoneout_h.is_none()) {
    options.zoneout_h = checked_optional<Scalar>(zoneout_h, "zoneout_h", {d.steps, d.batch, d.hidden}, false);
    options.zoneout_c = checked_optional<Scalar>(zoneout_c, "zoneout_c", {d.steps, d.batch, d.hidden}, false);
  } else {
    options.zoneout_rate = static_cast<Scalar>(zoneout_rate);
  }
}

// weight_ih (K*H, I), weight_hh (K*H, H), bias_ih and bias_hh (K*H,), peephole (3, H) or
// None: parameters, or their gradients (written by backward).
struct LstmWeights {
  py::array weight_ih, weight_hh, bias_ih, bias_hh;
  py::object peephole;
};

// The cell kind, the clamps and the regularizers of one layer-direction's pass.
struct LstmCallOptions {
  std::string cell = "plain";
  py::object clamps = py::none();          // None or 4 entries, None or (H,)
  py::object recurrent_mask = py::none();  // (B, H)
  py::object zoneout_h = py::none();       // (T, B, H), with zoneout_c
  py::object zoneout_c = py::none();
  double zoneout_rate = 0.0;            // inference's zoneout: the weight of the previous state
  py::object activations = py::none();  // the general cell's (activation_options.hpp)
  double clip = 0.0;
};

// `o` with its clamps in a tuple of its own: options checked once and kept (a narrow pass)
// point into the clamp arrays, which must then live as long as they do, whatever the
// caller does later to the list it gave.
inline LstmCallOptions held_options(const LstmCallOptions& o) {
  LstmCallOptions held = o;
  if (!held.clamps.is_none()) held.clamps = py::tuple(held.clamps);
  return held;
}

// The peephole weights, clamps and regularizers of `o`, checked; the tape's cell_updates
// are the caller's to set.
template <typename Scalar>
LstmOptions<Scalar> checked_cell_options(const LstmCallOptions& o, const py::object& peephole,
                                         const py::object& peephole_grad, const Dims& d) {
  auto options = checked_options<Scalar>(o.cell, peephole, peephole_grad, o.clamps, d);
  add_regularizers<Scalar>(options, o.recurrent_mask, o.zoneout_h, o.zoneout_c, o.zoneout_rate, d);
  if (!form_of(o.cell).general && (!o.activations.is_none() || o.clip != 0.0))
    throw py::value_error("activations and clip need a general cell ('general', 'general_peephole', ...)");
  options.activations = checked_activations(o.activations, o.clip);
  return options;
}

// The arrays an LSTM family's backward reads and writes, checked: the tape's x, h0, c0, y
// and dy, dh_n, dc_n (None: zero), dx, dh0, dc0. h0, dh_n and dh0 are (B, state_width):
// (B, P) for the projected LSTM, (B, H) for the others.
template <typename Scalar>
struct BackwardArrays {
  const Scalar *x, *h0, *c0, *y, *dy, *dh_n, *dc_n;
  Scalar *dx, *dh0, *dc0;
};

template <typename Scalar, typename Tape>
BackwardArrays<Scalar> checked_backward_arrays(const Tape& tape, const py::array& dy, const py::object& dh_n,
                                               const py::object& dc_n, const py::array& dx, const py::array& dh0,
                                               const py::array& dc0, const Dims& d, Index width,
                                               Index state_width) {
  BackwardArrays<Scalar> a{};
  a.x = checked<Scalar>(tape.x, "x", sequence_shape(d, d.input), false);
  a.h0 = checked<Scalar>(tape.h0, "h0", {d.batch, state_width}, false);
  a.c0 = checked<Scalar>(tape.c0, "c0", {d.batch, d.hidden}, false);
  a.y = checked<Scalar>(tape.y, "y", sequence_shape(d, width), false);
  a.dy = checked<Scalar>(dy, "dy", sequence_shape(d, width), false);
  a.dh_n = checked_optional<Scalar>(dh_n, "dh_n", {d.batch, state_width}, false);
  a.dc_n = optional_state<Scalar>(dc_n, "dc_n", d);
  a.dx = checked<Scalar>(dx, "dx", sequence_shape(d, d.input), true);
  a.dh0 = checked<Scalar>(dh0, "dh0", {d.batch, state_width}, true);
  a.dc0 = checked<Scalar>(dc0, "dc0", {d.batch, d.hidden}, true);
  return a;
}

}  // namespace lstmcore::bindings
