"""``PreparedModel``: a ``Sequential`` frozen for inference, called as the model is."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from lstmcore._typing import ArrayLike
from lstmcore.inference._reduced_file import save_reduced
from lstmcore.nn import Sequential
from lstmcore.nn._layers import RecurrentAdapter
from lstmcore.rnn._prepared import PreparedLayer, frozen_copy

_TRAINING = ("forward", "backward", "grads", "zero_grad", "fit", "evaluate")


class PreparedModel:
    """``predict`` and ``__call__`` of a snapshot of ``model``: its recurrent layers
    prepared (``PreparedLayer``), its other layers copies with frozen parameters.

    Built from the layers the model runs, so it computes what the model computes.
    Changing the original afterwards does not change it. Several Python threads may call
    one prepared model at once.
    """

    def __init__(self, model: Sequential, prepare_layer: Callable[[Any], PreparedLayer] = PreparedLayer) -> None:
        if type(model) is not Sequential:
            raise TypeError(
                f"prepare takes lstmcore's own Sequential, got {type(model).__name__} "
                "(what a subclass overrides would not run in the snapshot)"
            )
        steps = [_frozen_step(step, prepare_layer) for step in model._steps]
        snapshot = copy.copy(model)
        snapshot._steps = steps
        snapshot.layers = [step.layer if isinstance(step, RecurrentAdapter) else step for step in steps]
        snapshot.metadata = copy.deepcopy(model.metadata)
        object.__setattr__(self, "_model", snapshot)

    def __getattr__(self, name: str) -> Any:
        # What describes the model (layers, metadata, output_is_sequence, get_config, lengths_of).
        if name.startswith("_") or name in _TRAINING:
            raise AttributeError(f"a prepared model has no {name!r}: it is for inference only")
        return getattr(self._model, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a prepared model is a snapshot: set {name!r} on the original model and prepare it again")

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The snapshot's parameters by the model's names: read-only arrays."""
        return dict(self._model.params)

    @property
    def precision(self) -> str:
        """What its recurrent layers' weights are held in: 'float32' or 'float64' as the
        model's, or 'int8' or 'bfloat16' (``quantize``)."""
        for layer in self._model.layers:
            if isinstance(layer, PreparedLayer):
                return getattr(layer, "precision", None) or str(np.dtype(layer.dtype))
        return "float32"

    def __repr__(self) -> str:
        precision = self.precision
        return f"{precision if precision in ('int8', 'bfloat16') else 'prepared'} {self._model!r}"

    def save(self, path: str | os.PathLike[str]) -> None:
        """A quantized model (``quantize``) writes itself as a model file that
        ``lstmcore.load`` reads back quantized, with the very weights it holds. A
        prepared float model refuses: save the original."""
        precision = self.precision
        if precision not in ("int8", "bfloat16"):
            raise TypeError("a prepared float model is not saved: save the original model (model.save)")
        save_reduced(self._model.layers, self._model.metadata, precision, path)

    def __call__(self, x: ArrayLike, lengths: ArrayLike | None = None) -> np.ndarray:
        """As ``Sequential.__call__``: the output for one batch."""
        return self._model(x, lengths)

    def predict(self, x: ArrayLike, *, batch_size: int = 256, lengths: ArrayLike | None = None) -> np.ndarray:
        """As ``Sequential.predict``: inference in batches of ``batch_size``."""
        return self._model.predict(x, batch_size=batch_size, lengths=lengths)


def _frozen_step(step: Any, prepare_layer: Callable[[Any], PreparedLayer]) -> Any:
    """One step of the model as the snapshot runs it."""
    if isinstance(step, RecurrentAdapter):
        adapter = copy.copy(step)  # its view of what the layer's forward takes
        adapter.layer = prepare_layer(step.layer)  # type: ignore[assignment]
        return adapter
    # Its gradients are shared, not copied (a prepared model never touches them), then dropped.
    grads = getattr(step, "grads", None)
    frozen = copy.deepcopy(step, {id(value): value for value in grads.values()} if isinstance(grads, dict) else {})
    params = getattr(frozen, "params", None)
    if isinstance(params, dict):
        arrays = {name: _frozen(value) for name, value in params.items()}
        try:
            frozen.params = arrays
        except AttributeError:  # params a property without a setter: its own copies, read-only
            for value in params.values():
                if isinstance(value, np.ndarray):
                    value.flags.writeable = False
    with contextlib.suppress(AttributeError):  # a property without a setter: left shared
        frozen.grads = {}
    return frozen


def _frozen(value: Any) -> Any:
    """A numeric array as a frozen copy; anything else as it is, for the layer's own checks."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        return frozen_copy(value)
    return value
