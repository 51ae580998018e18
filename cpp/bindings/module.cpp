// The _core extension module: each part binds itself in its own file.
#include <pybind11/pybind11.h>

#include "parts.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "lstmcore's C++ core: gated recurrent passes over (T, B, F) or, batch_first, (B, T, F) arrays.";
  using namespace lstmcore::bindings;
  register_runtime(m);
  register_pass_options(m);
  register_narrow(m);
  register_lstm(m);
  register_projected_lstm(m);
  register_layer_norm_lstm(m);
  register_gru(m);
  register_rnn(m);
  register_reduced(m);
  auto diagnostics = m.def_submodule("diagnostics", "Test-only hooks into the core's plans and kernels.");
  register_diagnostics(diagnostics);
}
