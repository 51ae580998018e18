// One register_* per part of the _core module; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace lstmcore::bindings {

// The classes the kernel families share; registered first.
void register_pass_options(pybind11::module_& m);
void register_lstm(pybind11::module_& m);
void register_projected_lstm(pybind11::module_& m);
void register_layer_norm_lstm(pybind11::module_& m);
void register_gru(pybind11::module_& m);
void register_rnn(pybind11::module_& m);
void register_reduced(pybind11::module_& m);
void register_narrow(pybind11::module_& m);
void register_runtime(pybind11::module_& m);
// The test-only hooks, in the submodule _core.diagnostics.
void register_diagnostics(pybind11::module_& m);

}  // namespace lstmcore::bindings
