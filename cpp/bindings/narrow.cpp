// NarrowStack: a prepared layer's passes (NarrowPass, narrow.hpp) run as one call. What
// Python did around each pass of a plain call (allocating y, slicing the initial state,
// gathering the final state) is done here; the passes run the core forwards the plain
// call runs, on the same arrays, so the results are the plain call's bit for bit.
#include <pybind11/stl.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "narrow.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

// NumPy's array type itself: a state part of a subclass takes the layer's conversions.
PyTypeObject* ndarray_type() {
  static PyTypeObject* type =
      reinterpret_cast<PyTypeObject*>(py::module_::import("numpy").attr("ndarray").ptr());  // numpy keeps it
  return type;
}

class NarrowStack {
 public:
  NarrowStack(std::vector<NarrowPass> passes, Index layers, Index directions, bool batch_first, Index width,
              Index cell_width, py::dtype dtype)
      : passes_(std::move(passes)),
        layers_(layers),
        directions_(directions),
        batch_first_(batch_first),
        width_(width),
        cell_width_(cell_width),
        dtype_(std::move(dtype)) {
    if (layers < 1 || directions < 1 || static_cast<Index>(passes_.size()) != layers * directions) {
      throw py::value_error("expected one pass per layer and direction");
    }
    // What the call relies on to stay within each array: every pass reads and writes the
    // stack's dtype, reads the previous layer's y (D*W features), writes W columns of its
    // own and, with cells, a c of cell_width.
    for (Index index = 0; index < layers * directions; ++index) {
      const NarrowPass& pass = passes_[index];
      const NarrowForm& f = pass.form;
      const bool fits = pass.run && pass.dtype.is(dtype_) && pass.features == width && f.offset >= 0 &&
                        f.offset + width <= directions * width && pass.cell_features == cell_width &&
                        f.input == (index < directions ? passes_[0].form.input : directions * width);
      if (!fits) throw py::value_error("expected passes of one layer's sizes, dtype and directions");
    }
    input_ = passes_[0].form.input;
  }

  // x (B, T, I) or (T, B, I), a C-contiguous, aligned ndarray of the stack's dtype; state:
  // None (zeros) or the state as the layer returns it, (h (L*D, B, W), c (L*D, B, H)) with
  // cells, else h, in the same form. Returns (y, state), or None when x or the state is not
  // in that form (a list, another dtype, a strided view, an empty batch): the caller checks
  // and converts them as the layer does.
  py::object call(const py::object& x, const py::object& state) {
    if (!takes(x, 3)) return py::none();
    const auto array = py::reinterpret_borrow<py::array>(x);
    const Index steps = array.shape(batch_first_ ? 1 : 0), batch = array.shape(batch_first_ ? 0 : 1);
    const std::vector<py::ssize_t> shape = batch_first_
                                               ? std::vector<py::ssize_t>{batch, steps, directions_ * width_}
                                               : std::vector<py::ssize_t>{steps, batch, directions_ * width_};
    return run(array.data(), steps, batch, state, shape);
  }

  // One time step: x_t (B, I) -> (y_t (B, D*W), state), as call on a sequence of one step.
  py::object step(const py::object& x_t, const py::object& state) {
    if (!takes(x_t, 2)) return py::none();
    const auto array = py::reinterpret_borrow<py::array>(x_t);
    const Index batch = array.shape(0);
    return run(array.data(), 1, batch, state, {batch, directions_ * width_});
  }

 private:
  // An input in the core's form: exactly an ndarray of (..., I) with no empty axis.
  bool takes(const py::handle& x, int rank) const {
    if (Py_TYPE(x.ptr()) != ndarray_type()) return false;
    const auto a = py::reinterpret_borrow<py::array>(x);
    if (a.ndim() != rank || a.shape(rank - 1) != input_ || a.shape(0) < 1 || a.shape(1) < 1) return false;
    const int flags = a.flags();
    return a.dtype().is(dtype_) && (flags & py::array::c_style) &&
           (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_);
  }

  // A state part in the core's form: exactly an ndarray of (L*D, batch, features).
  bool core_form(const py::handle& part, Index batch, Index features) const {
    if (Py_TYPE(part.ptr()) != ndarray_type()) return false;
    const auto a = py::reinterpret_borrow<py::array>(part);
    const int flags = a.flags();
    return a.ndim() == 3 && a.shape(0) == layers_ * directions_ && a.shape(1) == batch && a.shape(2) == features &&
           a.dtype().is(dtype_) && (flags & py::array::c_style) &&
           (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_);
  }

  // Every pass over x (steps, batch, I) into y, the last layer's output; the
  // intermediate layers' outputs are the stack's own buffers.
  py::object run(const void* x, Index steps, Index batch, const py::object& state,
                 const std::vector<py::ssize_t>& y_shape) {
    const bool cells = cell_width_ > 0;
    const Index count = layers_ * directions_, itemsize = dtype_.itemsize();
    const char *h0 = nullptr, *c0 = nullptr;
    py::object h_part, c_part;
    if (!state.is_none()) {
      if (cells) {
        if (!PyTuple_Check(state.ptr()) || PyTuple_GET_SIZE(state.ptr()) != 2) return py::none();
        h_part = state[py::int_(0)];
        c_part = state[py::int_(1)];
        if (!core_form(h_part, batch, width_) || !core_form(c_part, batch, cell_width_)) return py::none();
        c0 = static_cast<const char*>(c_part.cast<py::array>().data());
      } else {
        h_part = state;
        if (!core_form(h_part, batch, width_)) return py::none();
      }
      h0 = static_cast<const char*>(h_part.cast<py::array>().data());
    }
    py::array y(dtype_, y_shape);
    py::array h_n(dtype_, std::vector<py::ssize_t>{count, batch, width_});
    py::array c_n = cells ? py::array(dtype_, std::vector<py::ssize_t>{count, batch, cell_width_}) : py::array();
    char* h_out = static_cast<char*>(h_n.mutable_data());
    char* c_out = cells ? static_cast<char*>(c_n.mutable_data()) : nullptr;
    char* y_out = static_cast<char*>(y.mutable_data());
    const Index row = directions_ * width_, h_size = batch * width_ * itemsize,
                c_size = batch * cell_width_ * itemsize;
    {
      py::gil_scoped_release release;
      // Zero initial states, and the inner layers' outputs (two, used in turn).
      std::vector<char> zeros(state.is_none() ? std::max(h_size, c_size) : 0, 0);
      std::vector<char, Eigen::aligned_allocator<char>> inner[2];
      const char* input = static_cast<const char*>(x);
      for (Index layer = 0; layer < layers_; ++layer) {
        char* out = y_out;
        if (layer + 1 < layers_) {
          inner[layer % 2].resize(steps * batch * row * itemsize);
          out = inner[layer % 2].data();
        }
        for (Index direction = 0; direction < directions_; ++direction) {
          const Index index = layer * directions_ + direction;
          const NarrowPass& pass = passes_[index];
          const NarrowArrays arrays{input,
                                    out,
                                    steps,
                                    batch,
                                    row,
                                    batch_first_,
                                    h0 ? h0 + index * h_size : zeros.data(),
                                    cells ? (c0 ? c0 + index * c_size : zeros.data()) : nullptr,
                                    cells ? c_out + index * c_size : nullptr};
          pass.run(arrays);
          // Each sequence's last h: the output's row at the time the pass ended.
          const Index t = pass.form.reverse ? 0 : steps - 1;
          for (Index b = 0; b < batch; ++b) {
            const Index at = batch_first_ ? (b * steps + t) * row : (t * batch + b) * row;
            std::memcpy(h_out + index * h_size + b * width_ * itemsize, out + (at + pass.form.offset) * itemsize,
                        width_ * itemsize);
          }
        }
        input = out;
      }
    }
    return py::make_tuple(std::move(y), cells ? py::object(py::make_tuple(std::move(h_n), std::move(c_n)))
                                              : py::object(std::move(h_n)));
  }

  std::vector<NarrowPass> passes_;
  Index layers_, directions_;
  bool batch_first_;
  Index width_, cell_width_, input_ = 0;
  py::dtype dtype_;
};

}  // namespace

void register_narrow(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<NarrowPass>(m, "NarrowPass", "A layer-direction's forward bound to its weights and options.");
  py::class_<NarrowStack>(m, "NarrowStack", "A prepared layer's passes run as one call: (x, state) -> (y, state).")
      .def(py::init<std::vector<NarrowPass>, Index, Index, bool, Index, Index, py::dtype>(), "passes"_a, "layers"_a,
           "directions"_a, "batch_first"_a, "width"_a, "cell_width"_a, "dtype"_a)
      .def("__call__", &NarrowStack::call, "x"_a, "state"_a = py::none(),
           "(y, state), or None when the state is not in the form the core reads.")
      .def("step", &NarrowStack::step, "x_t"_a, "state"_a = py::none(),
           "One step: x_t (B, I) -> (y_t (B, D*W), state), or None as __call__.");
}

}  // namespace lstmcore::bindings
