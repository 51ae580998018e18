// NarrowStack: a prepared layer's passes (NarrowPass, narrow.hpp) run as one call. What
// Python did around each pass of a plain call (allocating y, slicing the initial state,
// gathering the final state) is done here; the passes themselves are the bindings' own
// forwards, with their checks, so the results are the plain call's bit for bit.
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "narrow.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

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
  }

  // x (B, T, I) or (T, B, I), C-contiguous, of the stack's dtype; state: None (zeros) or
  // [h0 (L*D, B, W)] (+ [c0 (L*D, B, H)] with cells). Returns (y, h_n, c_n or None).
  py::tuple call(const py::array& x, const py::object& state) {
    if (x.ndim() != 3) throw py::value_error("expected x of rank 3");
    const Index steps = x.shape(batch_first_ ? 1 : 0), batch = x.shape(batch_first_ ? 0 : 1);
    const Index count = layers_ * directions_, itemsize = dtype_.itemsize();
    const bool cells = cell_width_ > 0;
    py::array h_all, c_all;
    if (state.is_none()) {
      h_all = zeros({count, batch, width_});
      if (cells) c_all = zeros({count, batch, cell_width_});
    } else {
      const auto parts = state.cast<py::list>();
      if (static_cast<Index>(parts.size()) != (cells ? 2 : 1)) throw py::value_error("expected the state's parts");
      h_all = parts[0].cast<py::array>();
      if (cells) c_all = parts[1].cast<py::array>();
    }
    py::array h_n(dtype_, std::vector<py::ssize_t>{count, batch, width_});
    py::array c_n = cells ? py::array(dtype_, std::vector<py::ssize_t>{count, batch, cell_width_}) : py::array();
    const std::vector<py::ssize_t> shape = batch_first_
                                               ? std::vector<py::ssize_t>{batch, steps, directions_ * width_}
                                               : std::vector<py::ssize_t>{steps, batch, directions_ * width_};
    py::array input = x;
    for (Index layer = 0; layer < layers_; ++layer) {
      py::array y(dtype_, shape);
      for (Index direction = 0; direction < directions_; ++direction) {
        const Index index = layer * directions_ + direction;
        const NarrowPass& pass = passes_[index];
        const py::object c0 = cells ? py::object(part(c_all, index, batch, cell_width_)) : py::object(py::none());
        const py::object c_last = pass.run(input, part(h_all, index, batch, width_), c0, y);
        // Each sequence's last h: y's row at the time the pass ended.
        const Index t = pass.reverse ? 0 : steps - 1;
        const auto* from = static_cast<const char*>(y.data());
        auto* to = static_cast<char*>(h_n.mutable_data()) + index * batch * width_ * itemsize;
        const Index row = directions_ * width_;
        for (Index b = 0; b < batch; ++b) {
          const Index at = batch_first_ ? (b * steps + t) * row : (t * batch + b) * row;
          std::memcpy(to + b * width_ * itemsize, from + (at + pass.offset) * itemsize, width_ * itemsize);
        }
        if (cells) {
          const auto c_values = c_last.cast<py::array>();
          std::memcpy(static_cast<char*>(c_n.mutable_data()) + index * batch * cell_width_ * itemsize,
                      c_values.data(), batch * cell_width_ * itemsize);
        }
      }
      input = y;
    }
    return py::make_tuple(input, h_n, cells ? py::object(c_n) : py::object(py::none()));
  }

  // One time step: x_t (B, I) C-contiguous -> (y_t (B, D*W), h_n, c_n or None), as call on
  // a sequence of one step, both arrays viewed without a copy.
  py::tuple step(const py::array& x_t, const py::object& state) {
    if (x_t.ndim() != 2 || !(x_t.flags() & py::array::c_style)) {
      throw py::value_error("expected x_t as a C-contiguous array of rank 2 (B, I)");
    }
    const py::ssize_t batch = x_t.shape(0), input = x_t.shape(1);
    const auto shape =
        batch_first_ ? std::vector<py::ssize_t>{batch, 1, input} : std::vector<py::ssize_t>{1, batch, input};
    const py::tuple result = call(py::array(x_t.dtype(), shape, {}, x_t.data(), x_t), state);
    const auto y = result[0].cast<py::array>();
    const py::array y_t(dtype_, std::vector<py::ssize_t>{batch, directions_ * width_}, {}, y.data(), y);
    return py::make_tuple(y_t, result[1], result[2]);
  }

 private:
  py::array zeros(const std::vector<py::ssize_t>& shape) const {
    py::array array(dtype_, shape);
    std::memset(array.mutable_data(), 0, array.nbytes());
    return array;
  }

  // all[index], (batch, width), as a view of a C-contiguous (count, batch, width) array.
  py::array part(const py::array& all, Index index, Index batch, Index width) const {
    if (all.ndim() != 3 || all.shape(1) != batch || all.shape(2) != width || !all.dtype().is(dtype_) ||
        !(all.flags() & py::array::c_style)) {
      throw py::value_error("expected a C-contiguous state part of shape (L*D, " + std::to_string(batch) + ", " +
                            std::to_string(width) + ")");
    }
    const auto* data = static_cast<const char*>(all.data()) + index * batch * width * dtype_.itemsize();
    return py::array(dtype_, std::vector<py::ssize_t>{batch, width}, {}, data, all);
  }

  std::vector<NarrowPass> passes_;
  Index layers_, directions_;
  bool batch_first_;
  Index width_, cell_width_;
  py::dtype dtype_;
};

}  // namespace

void register_narrow(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<NarrowPass>(m, "NarrowPass", "A layer-direction's forward bound to its weights and options.");
  py::class_<NarrowStack>(m, "NarrowStack",
                          "A prepared layer's passes run as one call: (x, state) -> (y, h_n, c_n or None).")
      .def(py::init<std::vector<NarrowPass>, Index, Index, bool, Index, Index, py::dtype>(), "passes"_a, "layers"_a,
           "directions"_a, "batch_first"_a, "width"_a, "cell_width"_a, "dtype"_a)
      .def("__call__", &NarrowStack::call, "x"_a, "state"_a = py::none())
      .def("step", &NarrowStack::step, "x_t"_a, "state"_a = py::none(),
           "One step: x_t (B, I) -> (y_t (B, D*W), h_n, c_n or None).");
}

}  // namespace lstmcore::bindings
