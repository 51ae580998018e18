// The activations and clip of a non-default cell as Python passes them: None for the
// defaults, or three (name, alpha, beta) entries (gate, candidate, output; the GRU's
// output is unused), and clip 0 for none.
#pragma once

#include <string>

#include "arrays.hpp"
#include "lstmcore/chosen_activation.hpp"

namespace lstmcore::bindings {

inline Activation checked_activation(const py::handle& entry) {
  const auto spec = py::cast<py::tuple>(entry);
  if (spec.size() != 3) throw py::value_error("expected an activation as (name, alpha, beta)");
  const auto name = py::cast<std::string>(spec[0]);
  Activation f{ActivationKind::sigmoid, py::cast<double>(spec[1]), py::cast<double>(spec[2])};
  if (!std::isfinite(f.alpha) || !std::isfinite(f.beta)) throw py::value_error("expected finite alpha and beta");
  if (name == "sigmoid") return f;
  if (name == "tanh")
    f.kind = ActivationKind::tanh;
  else if (name == "relu")
    f.kind = ActivationKind::relu;
  else if (name == "hard_sigmoid")
    f.kind = ActivationKind::hard_sigmoid;
  else if (name == "linear")
    f.kind = ActivationKind::linear;
  else if (name == "softsign")
    f.kind = ActivationKind::softsign;
  else
    throw py::value_error(
        "expected an activation among sigmoid, tanh, relu, hard_sigmoid, linear, softsign, got '" + name + "'");
  return f;
}

inline CellActivations checked_activations(const py::object& activations, double clip) {
  CellActivations acts;
  if (!(clip >= 0.0) || !std::isfinite(clip)) throw py::value_error("expected clip >= 0 and finite (0: none)");
  acts.clip = clip;
  if (activations.is_none()) return acts;
  const auto list = py::cast<py::list>(activations);
  if (list.size() != 3) throw py::value_error("expected 3 activations (gate, candidate, output)");
  acts.gate = checked_activation(list[0]);
  acts.candidate = checked_activation(list[1]);
  acts.output = checked_activation(list[2]);
  return acts;
}

}  // namespace lstmcore::bindings
