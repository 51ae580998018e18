// _core.PassOptions: the per-pass settings every kernel family takes by name.
#include "arrays.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

void register_pass_options(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<PassOptions>(m, "PassOptions",
                          "How one layer-direction's pass runs: direction, y's column offset, rows alive per "
                          "step (batch_sizes), layout.")
      .def(py::init([](bool reverse, Index y_offset, const py::object& batch_sizes, bool batch_first) {
             return PassOptions{reverse, y_offset, batch_sizes, batch_first};
           }),
           py::kw_only(), "reverse"_a = false, "y_offset"_a = 0, "batch_sizes"_a = py::none(),
           "batch_first"_a = false)
      .def_readonly("reverse", &PassOptions::reverse)
      .def_readonly("y_offset", &PassOptions::y_offset)
      .def_readonly("batch_sizes", &PassOptions::batch_sizes)
      .def_readonly("batch_first", &PassOptions::batch_first);
}

}  // namespace lstmcore::bindings
