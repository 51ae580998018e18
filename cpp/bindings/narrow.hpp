// The narrow path of prepared inference (python/lstmcore/inference): a layer-direction's
// forward bound once to its weights and options (a NarrowPass, made by each family's
// *_narrow_pass next to its forward), and a layer's passes run as one call from Python
// (NarrowStack, narrow.cpp), which allocates the outputs and gathers the final state.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <variant>

#include "arrays.hpp"
#include "lstmcore/eigen_types.hpp"

namespace lstmcore::bindings {

namespace py = pybind11;

struct NarrowPass {
  // Runs the family's forward on x, h0, c0 (None for GRU and RNN) into y, as its binding
  // does with everything but the arrays bound; returns c_n (B, H), or None.
  std::function<py::object(const py::array& x, const py::array& h0, const py::object& c0, const py::array& y)> run;
  bool reverse = false;  // runs from each sequence's end: its final h is at t = 0
  Index offset = 0;      // its features' first column in y
};

// The c_n of an LSTM family's forward tape (a Bound*Tape holding a variant of core
// tapes), as a view that keeps the tape alive: what their NarrowPass returns.
template <typename Bound>
py::object tape_c_n(const py::object& tape) {
  return std::visit(
      [&](const auto& core) -> py::object {
        return read_only_view(tape, core.c_n.data(), {core.batch, core.hidden});
      },
      tape.cast<const Bound&>().core);
}

}  // namespace lstmcore::bindings
