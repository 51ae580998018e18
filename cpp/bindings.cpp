// pybind11 bindings: the only file that knows Python.
//
// Each function takes NumPy arrays (sequences time-major, or batch-first with
// batch_first=True; tapes time-major), checks that every array has exactly the dtype,
// shape and contiguity the core will index (so no call from Python can make the core read
// or write out of bounds), releases the GIL and calls the core. Friendly, user-level
// checks (shapes in the user's terms, state tuples, ...) live in the Python layer; the
// checks here guard memory and name the array that failed.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <sstream>
#include <string>
#include <vector>

#include "lstmcore/gru.hpp"
#include "lstmcore/coupled_lstm_cell.hpp"
#include "lstmcore/fingerprint.hpp"
#include "lstmcore/layer_norm_lstm.hpp"
#include "lstmcore/lstm_cell.hpp"
#include "lstmcore/lstm_sequence.hpp"
#include "lstmcore/peephole_lstm_cell.hpp"
#include "lstmcore/projected_lstm_sequence.hpp"
#include "lstmcore/load_sensor.hpp"
#include "lstmcore/memory.hpp"
#include "lstmcore/peak.hpp"
#include "lstmcore/threading.hpp"

namespace py = pybind11;
using lstmcore::Index;

namespace {

std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t k = 0; k < shape.size(); ++k) out << (k ? ", " : "") << shape[k];
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

template <typename Scalar>
std::string dtype_name() {
  return std::string(py::str(py::dtype::of<Scalar>()));
}

// An optional argument that must be a NumPy array itself: converting anything else (a
// list) would make a temporary array, freed before the core reads or writes through the
// pointer taken from it.
py::array array_argument(const py::object& a, const char* name) {
  if (!py::isinstance<py::array>(a)) {
    throw py::type_error(std::string("expected ") + name + " as a NumPy array, got " +
                         std::string(py::str(py::type::of(a).attr("__name__"))));
  }
  return py::reinterpret_borrow<py::array>(a);
}

// Checks `a` is a C-contiguous array of Scalar with exactly `shape`; returns its data.
template <typename Scalar>
Scalar* checked(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape,
                bool writable) {
  std::vector<py::ssize_t> given(a.shape(), a.shape() + a.ndim());
  const bool ok_dtype = a.dtype().is(py::dtype::of<Scalar>());
  const bool ok_layout = (a.flags() & py::array::c_style) != 0;
  if (!ok_dtype || !ok_layout || given != shape) {
    std::ostringstream msg;
    msg << "expected " << name << " as a C-contiguous " << dtype_name<Scalar>() << " array of shape "
        << shape_text(shape) << ", got " << std::string(py::str(a.dtype())) << " of shape "
        << shape_text(given) << (ok_layout ? "" : " (not C-contiguous)");
    throw py::value_error(msg.str());
  }
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  return static_cast<Scalar*>(const_cast<void*>(a.data()));
}

// As `checked`, for an argument that may be None (nullptr) and is otherwise an array.
template <typename Scalar>
Scalar* checked_optional(const py::object& a, const char* name, const std::vector<py::ssize_t>& shape,
                         bool writable) {
  if (a.is_none()) return nullptr;
  return checked<Scalar>(array_argument(a, name), name, shape, writable);
}

// A call's sizes; the sequences x, y, dy, dx are (T, B, features) arrays, or (B, T,
// features) when batch_first. The tape is always time-major (T, B, ...).
struct Dims {
  Index steps, batch, input, hidden;
  bool batch_first;
};

// The shape of a sequence array with `features` features in the call's layout.
std::vector<py::ssize_t> sequence_shape(const Dims& d, Index features) {
  if (d.batch_first) return {d.batch, d.steps, features};
  return {d.steps, d.batch, features};
}

// The core's view of a checked sequence array of `width` features, from column `offset`.
template <typename Scalar>
lstmcore::SequenceView<Scalar> sequence(Scalar* data, const Dims& d, Index width, Index offset = 0) {
  if (d.batch_first) return {data + offset, width, d.steps * width};
  return {data + offset, d.batch * width, width};
}

// T, B, I from x in the call's layout, and H: a Dims.
Dims sequence_dims(const py::array& x, Index hidden, bool batch_first) {
  if (x.ndim() != 3)
    throw py::value_error(std::string("expected x of rank 3 ") + (batch_first ? "(B, T, I)" : "(T, B, I)") +
                          ", got rank " + std::to_string(x.ndim()));
  return {x.shape(batch_first ? 1 : 0), x.shape(batch_first ? 0 : 1), x.shape(2), hidden, batch_first};
}

// T, B, I from x and H from weight_hh (gates*H, H).
Dims dims_of(const py::array& x, const py::array& weight_hh, Index gates, bool batch_first) {
  if (weight_hh.ndim() != 2) throw py::value_error("expected weight_hh of rank 2");
  const Dims d = sequence_dims(x, weight_hh.shape(1), batch_first);
  if (d.steps < 1 || d.batch < 1 || d.hidden < 1)
    throw py::value_error("sequence length, batch and hidden size must be at least 1");
  if (weight_hh.shape(0) != gates * d.hidden)
    throw py::value_error("expected weight_hh with " + std::to_string(gates) + " * hidden rows");
  return d;
}

// The (T, B, width) output y and the column where this direction's H features start.
// `features`: H, or P for the projected LSTM.
Index checked_offset(const py::array& y, Index offset, Index features) {
  if (y.ndim() != 3 || offset < 0 || offset + features > y.shape(2)) {
    std::ostringstream msg;
    msg << "expected y of rank 3 with y_offset + " << features << " <= its width, got shape "
        << shape_text(std::vector<py::ssize_t>(y.shape(), y.shape() + y.ndim())) << " and y_offset " << offset;
    throw py::value_error(msg.str());
  }
  return y.shape(2);
}

template <typename Scalar>
struct Weights {
  lstmcore::GatedWeights<Scalar> w;
  // `recurrent`: the width of the state W_hh multiplies (H, or P when projected).
  Weights(const py::array& wi, const py::array& wh, const py::array& bi, const py::array& bh,
          const Dims& d, Index gates, Index recurrent = 0) {
    const py::ssize_t rows = gates * d.hidden;
    w = {checked<Scalar>(wi, "weight_ih", {rows, d.input}, false),
         checked<Scalar>(wh, "weight_hh", {rows, recurrent ? recurrent : d.hidden}, false),
         checked<Scalar>(bi, "bias_ih", {rows}, false),
         checked<Scalar>(bh, "bias_hh", {rows}, false)};
  }
};

template <typename Scalar>
lstmcore::GatedGrads<Scalar> checked_grads(const py::array& wi, const py::array& wh,
                                           const py::array& bi, const py::array& bh,
                                           const Dims& d, Index gates, Index recurrent = 0) {
  const py::ssize_t rows = gates * d.hidden;
  return {checked<Scalar>(wi, "grad weight_ih", {rows, d.input}, true),
          checked<Scalar>(wh, "grad weight_hh", {rows, recurrent ? recurrent : d.hidden}, true),
          checked<Scalar>(bi, "grad bias_ih", {rows}, true),
          checked<Scalar>(bh, "grad bias_hh", {rows}, true)};
}

// Optional (B, H) state gradient: None means zero.
template <typename Scalar>
const Scalar* optional_state(const py::object& a, const char* name, const Dims& d) {
  if (a.is_none()) return nullptr;
  return checked_optional<Scalar>(a, name, {d.batch, d.hidden}, false);
}

// Calls fn.template operator()<Scalar>() for the dtype of x: float32 or float64.
template <typename Fn>
void dispatch(const py::array& x, Fn&& fn) {
  if (x.dtype().is(py::dtype::of<float>())) return fn(float{});
  if (x.dtype().is(py::dtype::of<double>())) return fn(double{});
  throw py::type_error("expected float32 or float64 arrays, got " + std::string(py::str(x.dtype())));
}

// Rows alive per time step, (T,) int64, non-increasing in [0, B]; None: all B rows.
const Index* checked_batch_sizes(const py::object& a, const Dims& d) {
  if (a.is_none()) return nullptr;
  const Index* sizes = checked_optional<Index>(a, "batch_sizes", {d.steps}, false);
  for (Index t = 0; t < d.steps; ++t) {
    if (sizes[t] < 0 || sizes[t] > d.batch || (t > 0 && sizes[t] > sizes[t - 1]))
      throw py::value_error("batch_sizes must be non-increasing counts in [0, batch]");
  }
  return sizes;
}

lstmcore::SequenceShape shape_of(const Dims& d, bool reverse, const py::object& batch_sizes) {
  const Index* sizes = checked_batch_sizes(batch_sizes, d);
  return {d.steps, d.batch, d.input, d.hidden, reverse, sizes};
}

// A cell kind as a template argument: CellKind<LstmCell>::type<Scalar>.
template <template <typename> class C>
struct CellKind {
  template <typename Scalar>
  using type = C<Scalar>;
};

template <typename Fn>
void dispatch_cell(const std::string& cell, Fn&& fn) {
  if (cell == "plain") return fn(CellKind<lstmcore::LstmCell>{});
  if (cell == "peephole") return fn(CellKind<lstmcore::PeepholeLstmCell>{});
  if (cell == "coupled") return fn(CellKind<lstmcore::CoupledLstmCell>{});
  throw py::value_error("expected cell 'plain', 'peephole' or 'coupled', got '" + cell + "'");
}

// The peephole weights (3, H) for the peephole cell, absent for the others; the clamps
// None or a list of 4 entries, each an (H,) array or None.
template <typename Scalar>
lstmcore::LstmOptions<Scalar> checked_options(const std::string& cell, const py::object& peephole,
                                              const py::object& peephole_grad, const py::object& clamps,
                                              const Dims& d) {
  lstmcore::LstmOptions<Scalar> options;
  if ((cell == "peephole") == peephole.is_none())
    throw py::value_error("the peephole cell, and only it, takes peephole weights");
  if (!peephole.is_none())
    options.peephole = checked_optional<Scalar>(peephole, "peephole", {3, d.hidden}, false);
  if (!peephole_grad.is_none()) {
    if (peephole.is_none()) throw py::value_error("peephole_grad without peephole weights");
    options.peephole_grad =
        checked_optional<Scalar>(peephole_grad, "grad peephole", {3, d.hidden}, true);
  }
  if (clamps.is_none()) return options;
  const auto held = py::cast<py::list>(clamps);
  if (held.size() != 4) throw py::value_error("expected 4 clamps (input, forget, candidate, output)");
  for (int gate = 0; gate < 4; ++gate) {
    if (held[gate].is_none()) continue;
    if (cell == "coupled" && gate == lstmcore::kClampForget)
      throw py::value_error("the coupled cell has no forget gate of its own to clamp");
    options.clamps[gate] = checked_optional<Scalar>(held[gate], "clamp", {d.hidden}, false);
  }
  return options;
}

// Recurrent dropout's (B, H) mask and zoneout's (T, B, H) masks or rate, with the
// (T, B, H) tape of cell updates zoneout needs (written by forward, read by backward; a
// forward without a tape takes none).
template <typename Scalar>
void add_regularizers(lstmcore::LstmOptions<Scalar>& options, const py::object& recurrent_mask,
                      const py::object& zoneout_h, const py::object& zoneout_c, double zoneout_rate,
                      const py::object& cell_updates, const Dims& d, bool forward, bool taped = true) {
  if (!recurrent_mask.is_none())
    options.recurrent_mask =
        checked_optional<Scalar>(recurrent_mask, "recurrent_mask", {d.batch, d.hidden}, false);
  if (zoneout_h.is_none() != zoneout_c.is_none())
    throw py::value_error("zoneout needs both masks, zoneout_h and zoneout_c, or neither");
  if (!(zoneout_rate >= 0.0 && zoneout_rate < 1.0)) throw py::value_error("zoneout_rate must be in [0, 1)");
  if (!zoneout_h.is_none()) {
    options.zoneout_h = checked_optional<Scalar>(zoneout_h, "zoneout_h", {d.steps, d.batch, d.hidden}, false);
    options.zoneout_c = checked_optional<Scalar>(zoneout_c, "zoneout_c", {d.steps, d.batch, d.hidden}, false);
  } else {
    options.zoneout_rate = static_cast<Scalar>(zoneout_rate);
  }
  if (!taped && !cell_updates.is_none())
    throw py::value_error("a forward without gates and cells tapes takes no cell_updates");
  if (taped && options.zoneout()) {
    if (cell_updates.is_none()) throw py::value_error("zoneout needs the cell_updates tape");
    options.cell_updates =
        checked_optional<Scalar>(cell_updates, "cell_updates", {d.steps, d.batch, d.hidden}, forward);
  }
}

void lstm_forward(const py::array& x, const py::array& wi, const py::array& wh,
                  const py::array& bi, const py::array& bh, const py::array& h0,
                  const py::array& c0, bool reverse, const py::array& y, Index y_offset,
                  const py::object& gates, const py::object& cells, const std::string& cell,
                  const py::object& peephole, const py::object& clamps, const py::object& batch_sizes,
                  const py::object& recurrent_mask, const py::object& zoneout_h,
                  const py::object& zoneout_c, double zoneout_rate, const py::object& cell_updates,
                  const py::object& c_n, bool batch_first) {
  dispatch_cell(cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Dims d = dims_of(x, wh, K, batch_first);
    const Index width = checked_offset(y, y_offset, d.hidden);
    const auto shape = shape_of(d, reverse, batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const Weights<Scalar> w(wi, wh, bi, bh, d, K);
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
      lstmcore::lstm_forward<Scalar, Kind::template type>(shape, sequence(xp, d, d.input), w.w, options, h0p, c0p,
                                                         sequence(yp, d, width, y_offset), gp, cp, cnp);
    });
  });
}

void lstm_backward(const py::array& x, const py::array& wi, const py::array& wh,
                   const py::array& bi, const py::array& bh, const py::array& h0,
                   const py::array& c0, bool reverse, const py::array& y, Index y_offset,
                   const py::array& gates, const py::array& cells, const py::array& dy,
                   const py::object& dh_n, const py::object& dc_n, const py::array& dx,
                   const py::array& gwi, const py::array& gwh, const py::array& gbi,
                   const py::array& gbh, const py::array& dh0, const py::array& dc0,
                   const std::string& cell, const py::object& peephole,
                   const py::object& peephole_grad, const py::object& clamps,
                   const py::object& batch_sizes, const py::object& recurrent_mask,
                   const py::object& zoneout_h, const py::object& zoneout_c, double zoneout_rate,
                   const py::object& cell_updates, bool batch_first, bool accumulate_dx) {
  dispatch_cell(cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Dims d = dims_of(x, wh, K, batch_first);
    const Index width = checked_offset(y, y_offset, d.hidden);
    const auto shape = shape_of(d, reverse, batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const Weights<Scalar> w(wi, wh, bi, bh, d, K);
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
      lstmcore::lstm_backward<Scalar, Kind::template type>(shape, xs, w.w, options, h0p, c0p, ys, gp, cp, dys, dhn,
                                                          dcn, dxs, accumulate_dx, grads, dh0p, dc0p);
    });
  });
}

// T, B, I from x; H and P from weight_hr (P, H).
Dims projected_dims_of(const py::array& x, const py::array& weight_hr, Index& proj, bool batch_first) {
  if (weight_hr.ndim() != 2) throw py::value_error("expected weight_hr of rank 2 (P, H)");
  const Dims d = sequence_dims(x, weight_hr.shape(1), batch_first);
  proj = weight_hr.shape(0);
  if (d.steps < 1 || d.batch < 1 || d.hidden < 1 || proj < 1)
    throw py::value_error("sequence length, batch, hidden and projection sizes must be at least 1");
  return d;
}

void projected_lstm_forward(const py::array& x, const py::array& wi, const py::array& wh,
                            const py::array& bi, const py::array& bh, const py::array& whr,
                            const py::array& h0, const py::array& c0, bool reverse,
                            const py::array& y, Index y_offset, const py::object& gates,
                            const py::object& cells, const py::object& cell_out, const std::string& cell,
                            const py::object& peephole, const py::object& clamps,
                            const py::object& batch_sizes, const py::object& c_n, bool batch_first) {
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
      const Weights<Scalar> w(wi, wh, bi, bh, d, K, P);
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
      lstmcore::projected_lstm_forward<Scalar, Kind::template type>(shape, P, xs, w.w, hrp, options, h0p, c0p, ys, gp,
                                                                   cp, rp, cnp);
    });
  });
}

void projected_lstm_backward(const py::array& x, const py::array& wi, const py::array& wh,
                             const py::array& bi, const py::array& bh, const py::array& whr,
                             const py::array& h0, const py::array& c0, bool reverse,
                             const py::array& y, Index y_offset, const py::array& gates,
                             const py::array& cells, const py::array& cell_out, const py::array& dy,
                             const py::object& dh_n, const py::object& dc_n, const py::array& dx,
                             const py::array& gwi, const py::array& gwh, const py::array& gbi,
                             const py::array& gbh, const py::array& gwhr, const py::array& dh0,
                             const py::array& dc0, const std::string& cell,
                             const py::object& peephole, const py::object& peephole_grad,
                             const py::object& clamps, const py::object& batch_sizes, bool batch_first,
                             bool accumulate_dx) {
  dispatch_cell(cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    Index P = 0;
    const Dims d = projected_dims_of(x, whr, P, batch_first);
    const Index width = checked_offset(y, y_offset, P);
    const auto shape = shape_of(d, reverse, batch_sizes);
    dispatch(x, [&](auto zero) {
      using Scalar = decltype(zero);
      const Weights<Scalar> w(wi, wh, bi, bh, d, K, P);
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
      lstmcore::projected_lstm_backward<Scalar, Kind::template type>(shape, P, xs, w.w, hrp, options, h0p, c0p, ys, gp,
                                                                    cp, rp, dys, dhn, dcn, dxs, accumulate_dx, grads,
                                                                    ghrp, dh0p, dc0p);
    });
  });
}

// The four clamps of the layer-norm LSTM (None or a list of 4 entries, None or (H,)).
template <typename Scalar>
std::array<const Scalar*, 4> checked_clamps(const py::object& clamps, const Dims& d) {
  return checked_options<Scalar>("plain", py::none(), py::none(), clamps, d).clamps;
}

template <typename Scalar>
lstmcore::LayerNormTape<Scalar> checked_layer_norm_tape(const py::array& input_norm, const py::array& hidden_norm,
                                                        const py::array& cell_norm, const py::array& inv_std,
                                                        const Dims& d, bool writable) {
  return {checked<Scalar>(input_norm, "input_norm", {d.steps, d.batch, 4 * d.hidden}, writable),
          checked<Scalar>(hidden_norm, "hidden_norm", {d.steps, d.batch, 4 * d.hidden}, writable),
          checked<Scalar>(cell_norm, "cell_norm", {d.steps, d.batch, d.hidden}, writable),
          checked<Scalar>(inv_std, "inv_std", {d.steps, d.batch, 3}, writable)};
}

void layer_norm_lstm_forward(const py::array& x, const py::array& wi, const py::array& wh,
                             const py::array& bi, const py::array& bh, const py::array& gain_ih,
                             const py::array& gain_hh, const py::array& gain_cell,
                             const py::array& bias_cell, const py::array& h0, const py::array& c0,
                             bool reverse, const py::array& y, Index y_offset, const py::object& gates,
                             const py::object& cells, const py::object& input_norm,
                             const py::object& hidden_norm, const py::object& cell_norm,
                             const py::object& inv_std, const py::object& clamps,
                             const py::object& batch_sizes, const py::object& c_n, bool batch_first) {
  // The tape (gates, cells and the four normalisation arrays), or all six None (inference).
  const bool taped = !gates.is_none();
  for (const py::object* part : {&cells, &input_norm, &hidden_norm, &cell_norm, &inv_std}) {
    if (part->is_none() == taped) {
      throw py::value_error("expected the layer-norm tape whole (gates, cells, input_norm, hidden_norm, "
                            "cell_norm, inv_std) or none of it");
    }
  }
  const Dims d = dims_of(x, wh, 4, batch_first);
  const Index width = checked_offset(y, y_offset, d.hidden);
  const auto shape = shape_of(d, reverse, batch_sizes);
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const Weights<Scalar> w(wi, wh, bi, bh, d, 4);
    const lstmcore::LayerNormParams<Scalar> ln{
        checked<Scalar>(gain_ih, "layer_norm_ih_weight", {4 * d.hidden}, false),
        checked<Scalar>(gain_hh, "layer_norm_hh_weight", {4 * d.hidden}, false),
        checked<Scalar>(gain_cell, "layer_norm_cell_weight", {d.hidden}, false),
        checked<Scalar>(bias_cell, "layer_norm_cell_bias", {d.hidden}, false)};
    const auto held = checked_clamps<Scalar>(clamps, d);
    lstmcore::LayerNormTape<Scalar> tape{};
    if (taped) {
      tape = checked_layer_norm_tape<Scalar>(array_argument(input_norm, "input_norm"),
                                             array_argument(hidden_norm, "hidden_norm"),
                                             array_argument(cell_norm, "cell_norm"),
                                             array_argument(inv_std, "inv_std"), d, true);
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
    lstmcore::layer_norm_lstm_forward<Scalar>(shape, xs, w.w, ln, held, h0p, c0p, ys, gp, cp, tape, cnp);
  });
}

void layer_norm_lstm_backward(const py::array& x, const py::array& wi, const py::array& wh,
                              const py::array& bi, const py::array& bh, const py::array& gain_ih,
                              const py::array& gain_hh, const py::array& gain_cell,
                              const py::array& bias_cell, const py::array& h0, const py::array& c0,
                              bool reverse, const py::array& y, Index y_offset, const py::array& gates,
                              const py::array& cells, const py::array& input_norm,
                              const py::array& hidden_norm, const py::array& cell_norm,
                              const py::array& inv_std, const py::array& dy, const py::object& dh_n,
                              const py::object& dc_n, const py::array& dx, const py::array& gwi,
                              const py::array& gwh, const py::array& gbi, const py::array& gbh,
                              const py::array& g_gain_ih, const py::array& g_gain_hh,
                              const py::array& g_gain_cell, const py::array& g_bias_cell,
                              const py::array& dh0, const py::array& dc0, const py::object& clamps,
                              const py::object& batch_sizes, bool batch_first, bool accumulate_dx) {
  const Dims d = dims_of(x, wh, 4, batch_first);
  const Index width = checked_offset(y, y_offset, d.hidden);
  const auto shape = shape_of(d, reverse, batch_sizes);
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const Weights<Scalar> w(wi, wh, bi, bh, d, 4);
    const lstmcore::LayerNormParams<Scalar> ln{
        checked<Scalar>(gain_ih, "layer_norm_ih_weight", {4 * d.hidden}, false),
        checked<Scalar>(gain_hh, "layer_norm_hh_weight", {4 * d.hidden}, false),
        checked<Scalar>(gain_cell, "layer_norm_cell_weight", {d.hidden}, false),
        checked<Scalar>(bias_cell, "layer_norm_cell_bias", {d.hidden}, false)};
    const lstmcore::LayerNormGrads<Scalar> ln_grads{
        checked<Scalar>(g_gain_ih, "grad layer_norm_ih_weight", {4 * d.hidden}, true),
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
    lstmcore::layer_norm_lstm_backward<Scalar>(shape, xs, w.w, ln, held, h0p, c0p, ys, gp, cp, tape, dys, dhn, dcn, dxs,
                                               accumulate_dx, grads, ln_grads, dh0p, dc0p);
  });
}

void gru_forward(const py::array& x, const py::array& wi, const py::array& wh,
                 const py::array& bi, const py::array& bh, const py::array& h0, bool reverse,
                 const py::array& y, Index y_offset, const py::object& gates,
                 const py::object& batch_sizes, bool batch_first) {
  const Dims d = dims_of(x, wh, 3, batch_first);
  const Index width = checked_offset(y, y_offset, d.hidden);
  const auto shape = shape_of(d, reverse, batch_sizes);
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const Weights<Scalar> w(wi, wh, bi, bh, d, 3);
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), true);
    // gates: the tape, or None (inference).
    auto* gp = checked_optional<Scalar>(gates, "gates",
                                        {d.steps, d.batch, lstmcore::gru_tape_width(d.hidden)}, true);
    py::gil_scoped_release release;
    lstmcore::gru_forward<Scalar>(shape, sequence(xp, d, d.input), w.w, h0p, sequence(yp, d, width, y_offset), gp);
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
    const Weights<Scalar> w(wi, wh, bi, bh, d, 3);
    const auto grads = checked_grads<Scalar>(gwi, gwh, gbi, gbh, d, 3);
    const auto* xp = checked<Scalar>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<Scalar>(h0, "h0", {d.batch, d.hidden}, false);
    const auto* yp = checked<Scalar>(y, "y", sequence_shape(d, width), false);
    const auto* gp = checked<Scalar>(gates, "gates",
                                     {d.steps, d.batch, lstmcore::gru_tape_width(d.hidden)}, false);
    const auto* dyp = checked<Scalar>(dy, "dy", sequence_shape(d, width), false);
    const Scalar* dhn = optional_state<Scalar>(dh_n, "dh_n", d);
    auto* dxp = checked<Scalar>(dx, "dx", sequence_shape(d, d.input), true);
    auto* dh0p = checked<Scalar>(dh0, "dh0", {d.batch, d.hidden}, true);
    py::gil_scoped_release release;
    const auto xs = sequence(xp, d, d.input), dxs = sequence(dxp, d, d.input);
    const auto ys = sequence(yp, d, width, y_offset), dys = sequence(dyp, d, width, y_offset);
    lstmcore::gru_backward<Scalar>(shape, xs, w.w, h0p, ys, gp, dys, dhn, dxs, accumulate_dx, grads, dh0p);
  });
}

// Applies the core's vectorized tanh or sigmoid to a 1-D array (for the error-bound tests).
template <bool kTanh>
py::array activation(const py::array& x) {
  if (x.ndim() != 1) throw py::value_error("expected a 1-D array");
  py::array out;
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto* in = checked<Scalar>(x, "x", {x.shape(0)}, false);
    out = py::array_t<Scalar>(x.shape(0));
    auto* result = static_cast<Scalar*>(out.mutable_data());
    py::gil_scoped_release release;
    if (kTanh) lstmcore::apply_gate_tanh(in, result, x.shape(0));
    else lstmcore::apply_gate_sigmoid(in, result, x.shape(0));
  });
  return out;
}

// The shape of a pass as pass_plan and dx_after_the_loop describe it: one step, or as many
// as batch_sizes has.
lstmcore::SequenceShape planned_shape(Index batch, Index input, Index hidden, const py::object& batch_sizes,
                                      Index steps = 1) {
  if (!batch_sizes.is_none()) steps = static_cast<Index>(py::len(batch_sizes));
  return shape_of({steps, batch, input, hidden, false}, false, batch_sizes);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "lstmcore's C++ core: gated recurrent passes over (T, B, F) or, batch_first, (B, T, F) arrays.";
  using namespace pybind11::literals;
  m.def("lstm_forward", &lstm_forward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "cells"_a,
        py::kw_only(), "cell"_a = "plain", "peephole"_a = py::none(), "clamps"_a = py::none(),
        "batch_sizes"_a = py::none(), "recurrent_mask"_a = py::none(), "zoneout_h"_a = py::none(),
        "zoneout_c"_a = py::none(), "zoneout_rate"_a = 0.0, "cell_updates"_a = py::none(), "c_n"_a = py::none(),
        "batch_first"_a = false);
  m.def("lstm_backward", &lstm_backward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "cells"_a,
        "dy"_a, "dh_n"_a, "dc_n"_a, "dx"_a, "grad_weight_ih"_a, "grad_weight_hh"_a,
        "grad_bias_ih"_a, "grad_bias_hh"_a, "dh0"_a, "dc0"_a, py::kw_only(), "cell"_a = "plain",
        "peephole"_a = py::none(), "grad_peephole"_a = py::none(), "clamps"_a = py::none(),
        "batch_sizes"_a = py::none(), "recurrent_mask"_a = py::none(), "zoneout_h"_a = py::none(),
        "zoneout_c"_a = py::none(), "zoneout_rate"_a = 0.0, "cell_updates"_a = py::none(),
        "batch_first"_a = false, "accumulate_dx"_a = false);
  m.def("projected_lstm_forward", &projected_lstm_forward, "x"_a, "weight_ih"_a, "weight_hh"_a,
        "bias_ih"_a, "bias_hh"_a, "weight_hr"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a, "y_offset"_a,
        "gates"_a, "cells"_a, "cell_out"_a, py::kw_only(), "cell"_a = "plain", "peephole"_a = py::none(),
        "clamps"_a = py::none(), "batch_sizes"_a = py::none(), "c_n"_a = py::none(), "batch_first"_a = false);
  m.def("projected_lstm_backward", &projected_lstm_backward, "x"_a, "weight_ih"_a, "weight_hh"_a,
        "bias_ih"_a, "bias_hh"_a, "weight_hr"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a, "y_offset"_a,
        "gates"_a, "cells"_a, "cell_out"_a, "dy"_a, "dh_n"_a, "dc_n"_a, "dx"_a, "grad_weight_ih"_a,
        "grad_weight_hh"_a, "grad_bias_ih"_a, "grad_bias_hh"_a, "grad_weight_hr"_a, "dh0"_a, "dc0"_a,
        py::kw_only(), "cell"_a = "plain", "peephole"_a = py::none(), "grad_peephole"_a = py::none(),
        "clamps"_a = py::none(), "batch_sizes"_a = py::none(), "batch_first"_a = false, "accumulate_dx"_a = false);
  m.def("layer_norm_lstm_forward", &layer_norm_lstm_forward, "x"_a, "weight_ih"_a, "weight_hh"_a,
        "bias_ih"_a, "bias_hh"_a, "layer_norm_ih_weight"_a, "layer_norm_hh_weight"_a,
        "layer_norm_cell_weight"_a, "layer_norm_cell_bias"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a,
        "y_offset"_a, "gates"_a, "cells"_a, "input_norm"_a, "hidden_norm"_a, "cell_norm"_a,
        "inv_std"_a, py::kw_only(), "clamps"_a = py::none(), "batch_sizes"_a = py::none(), "c_n"_a = py::none(),
        "batch_first"_a = false);
  m.def("layer_norm_lstm_backward", &layer_norm_lstm_backward, "x"_a, "weight_ih"_a, "weight_hh"_a,
        "bias_ih"_a, "bias_hh"_a, "layer_norm_ih_weight"_a, "layer_norm_hh_weight"_a,
        "layer_norm_cell_weight"_a, "layer_norm_cell_bias"_a, "h0"_a, "c0"_a, "reverse"_a, "y"_a,
        "y_offset"_a, "gates"_a, "cells"_a, "input_norm"_a, "hidden_norm"_a, "cell_norm"_a,
        "inv_std"_a, "dy"_a, "dh_n"_a, "dc_n"_a, "dx"_a, "grad_weight_ih"_a, "grad_weight_hh"_a,
        "grad_bias_ih"_a, "grad_bias_hh"_a, "grad_layer_norm_ih_weight"_a,
        "grad_layer_norm_hh_weight"_a, "grad_layer_norm_cell_weight"_a,
        "grad_layer_norm_cell_bias"_a, "dh0"_a, "dc0"_a, py::kw_only(), "clamps"_a = py::none(),
        "batch_sizes"_a = py::none(), "batch_first"_a = false, "accumulate_dx"_a = false);
  m.def("gru_forward", &gru_forward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "h0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, py::kw_only(),
        "batch_sizes"_a = py::none(), "batch_first"_a = false);
  m.def("gru_backward", &gru_backward, "x"_a, "weight_ih"_a, "weight_hh"_a, "bias_ih"_a,
        "bias_hh"_a, "h0"_a, "reverse"_a, "y"_a, "y_offset"_a, "gates"_a, "dy"_a, "dh_n"_a,
        "dx"_a, "grad_weight_ih"_a, "grad_weight_hh"_a, "grad_bias_ih"_a, "grad_bias_hh"_a,
        "dh0"_a, py::kw_only(), "batch_sizes"_a = py::none(), "batch_first"_a = false, "accumulate_dx"_a = false);
  m.def("gate_tanh", &activation<true>, "x"_a, "The core's tanh, for the accuracy tests.");
  m.def("gate_sigmoid", &activation<false>, "x"_a, "The core's sigmoid, for the accuracy tests.");
  m.def("gru_tape_width", [](Index hidden) { return lstmcore::gru_tape_width(hidden); });
  m.def("set_num_threads", &lstmcore::set_max_threads, "threads"_a,
        "Threads the core may use; 0 restores OpenMP's default.");
  m.def("get_num_threads", &lstmcore::max_threads);
  m.def("requested_threads", [] { return lstmcore::threads_set_by_caller() ? lstmcore::max_threads() : 0; },
        "The thread count set by set_num_threads, or 0 for the default.");
  m.def(
      "pass_plan",
      [](Index batch, Index input, Index hidden, Index gates, Index itemsize, bool backward,
         const py::object& batch_sizes, Index steps) {
        const auto shape = planned_shape(batch, input, hidden, batch_sizes, steps);
        const auto pass = backward ? lstmcore::Pass::backward : lstmcore::Pass::forward;
        const auto plan = lstmcore::plan_pass(shape, gates, itemsize, pass);
        return py::make_tuple(plan.threads, plan.by_batch ? "batch" : "units");
      },
      "batch"_a, "input"_a, "hidden"_a, "gates"_a, "itemsize"_a, "backward"_a, "batch_sizes"_a = py::none(),
      "steps"_a = 1,
      "(threads, 'units' or 'batch'): how an LSTM or GRU pass of this shape (steps, or batch_sizes as "
      "the passes take them) splits over threads.");
  m.def("load_sensor", [] {
    const auto state = lstmcore::load_sensor_state();
    py::dict d;
    d["enabled"] = state.enabled;
    d["busy"] = state.busy;
    d["passes_sensed"] = state.passes_sensed;
    d["busy_verdicts"] = state.busy_verdicts;
    d["holds_renewed"] = state.holds_renewed;
    d["hold_seconds"] = state.hold_seconds;
    d["last_slowest_start_us"] = state.last_slowest_start_us;
    d["last_longest_sleep_us"] = state.last_longest_sleep_us;
    return d;
  }, "What the load sensor (load_sensor.hpp) found: whether the cores are busy, and its counts.");
  m.def("reset_load_sensor", &lstmcore::reset_load_sensor, "enabled"_a,
        "Forget what the load sensor found, and turn it on or off.");
  m.def(
      "sense_team",
      [](double slowest_start_us, double longest_sleep_us) {
        using std::chrono::nanoseconds;
        lstmcore::sense_team(nanoseconds(static_cast<long long>(slowest_start_us * 1e3)),
                             nanoseconds(static_cast<long long>(longest_sleep_us * 1e3)));
      },
      "slowest_start_us"_a, "longest_sleep_us"_a, "Report a multi-threaded pass's timings, as a pass does (tests).");
  m.attr("per_step_input_gradient_bytes") = lstmcore::kPerStepBytes;
  m.def(
      "dx_after_the_loop",
      [](Index batch, Index input, Index hidden, Index gates, Index itemsize, const py::object& batch_sizes) {
        const auto shape = planned_shape(batch, input, hidden, batch_sizes);
        const auto plan = lstmcore::plan_pass(shape, gates, itemsize, lstmcore::Pass::backward);
        const auto per_step = [&](auto scalar, int thread) {
          using Scalar = decltype(scalar);
          const Index align = lstmcore::PanelLayout<Scalar>::kWidth;  // as the kernels split
          const auto part = lstmcore::pass_part(plan, shape, thread, plan.threads, align);
          return lstmcore::InputGradient<Scalar>::computes_per_step(part.inputs.size(), gates * hidden);
        };
        py::list after;
        for (int thread = 0; thread < plan.threads; ++thread) {
          after.append(!(itemsize == 4 ? per_step(float{}, thread) : per_step(double{}, thread)));
        }
        return py::tuple(after);
      },
      "batch"_a, "input"_a, "hidden"_a, "gates"_a, "itemsize"_a, "batch_sizes"_a = py::none(),
      "Per thread of an LSTM or GRU backward of this shape: whether it computes dx after the time loop "
      "(input_gradient.hpp) rather than step by step.");
  m.def(
      "fingerprint",
      [](const py::array& a) {
        if (!(a.flags() & py::array::c_style)) throw py::value_error("expected a C-contiguous array");
        const auto* bytes = static_cast<const unsigned char*>(a.data());
        const auto size = static_cast<std::size_t>(a.nbytes());
        py::gil_scoped_release release;
        return lstmcore::fingerprint(bytes, size);
      },
      "array"_a, "A 64-bit fingerprint of a C-contiguous array's bytes (fingerprint.hpp): tapes use it to "
      "notice parameters changed since the forward pass.");
  m.def("retain_freed_memory", &lstmcore::retain_freed_memory,
        "Keep freed blocks in the heap for reuse (glibc); False where unsupported.");
  m.def(
      "fma_peak_gflops",
      [](int threads, double seconds) {
        py::gil_scoped_release release;
        return lstmcore::fma_peak_gflops(threads, seconds);
      },
      "threads"_a, "seconds"_a = 0.5,
      "Measured fp32 FMA throughput in GFLOP/s (benchmarks report a percentage of it).");
}
