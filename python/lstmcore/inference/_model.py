"""``PreparedModel``: a ``Sequential`` frozen for inference, called as the model is."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from lstmcore._typing import ArrayLike
from lstmcore.inference._layer import PreparedLayer, twin
from lstmcore.nn import Sequential


class PreparedModel:
    """``predict`` and ``__call__`` of a snapshot of ``model`` whose recurrent layers are
    prepared (``PreparedLayer``); the other layers are copies of the model's.

    Changing the original model afterwards does not change the prepared one. Several
    Python threads may call one prepared model at once.
    """

    def __init__(self, model: Sequential) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(f"expected an lstmcore Sequential, got {type(model).__name__}")
        snapshot = Sequential([twin(layer) for layer in model.layers], metadata=copy.deepcopy(model.metadata))
        for step in snapshot._steps:
            recurrent = getattr(step, "layer", None)
            if recurrent is not None:
                setattr(step, "layer", PreparedLayer(recurrent))  # noqa: B010 (not every step has one)
            for value in getattr(step, "params", {}).values():
                value.flags.writeable = False
        snapshot._prepared = True
        self._model = snapshot

    def __getattr__(self, name: str) -> Any:
        # What describes the model (layers, metadata, output_is_sequence, get_config, lengths_of).
        if name.startswith("_") or name in ("forward", "backward", "grads", "zero_grad", "fit", "evaluate", "save"):
            raise AttributeError(f"a prepared model has no {name!r}: it is for inference only")
        return getattr(self._model, name)

    def __repr__(self) -> str:
        return f"prepared {self._model!r}"

    def __call__(self, x: ArrayLike, lengths: ArrayLike | None = None) -> np.ndarray:
        """As ``Sequential.__call__``: the output for one batch."""
        return self._model(x, lengths)

    def predict(self, x: ArrayLike, *, batch_size: int = 256, lengths: ArrayLike | None = None) -> np.ndarray:
        """As ``Sequential.predict``: inference in batches of ``batch_size``."""
        return self._model.predict(x, batch_size=batch_size, lengths=lengths)
