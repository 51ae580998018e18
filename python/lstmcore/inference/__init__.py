"""Inference-only snapshots of layers and models: ``prepare``."""

from __future__ import annotations

from typing import overload

from lstmcore.inference._layer import PreparedLayer
from lstmcore.inference._model import PreparedModel
from lstmcore.nn import Sequential
from lstmcore.rnn._recurrent import _GatedRecurrent


@overload
def prepare(model_or_layer: Sequential) -> PreparedModel: ...
@overload
def prepare(model_or_layer: _GatedRecurrent) -> PreparedLayer: ...
def prepare(model_or_layer: Sequential | _GatedRecurrent) -> PreparedModel | PreparedLayer:
    """An inference-only snapshot of an LSTM, GRU or RNN layer, or of a ``Sequential``.

    Called as what it was given (a layer's call and ``step``, a model's ``predict`` and
    call), with the same results bit for bit, at less cost per call: the parameters are
    checked, converted and copied once, and each layer-direction's core call is built
    once. Later changes to the original's parameters do not reach it (docs/inference.md).
    """
    if isinstance(model_or_layer, PreparedLayer | PreparedModel):
        return model_or_layer
    if isinstance(model_or_layer, Sequential):
        return PreparedModel(model_or_layer)
    if isinstance(model_or_layer, _GatedRecurrent):
        return PreparedLayer(model_or_layer)
    raise TypeError(
        "prepare takes an lstmcore LSTM, GRU or RNN layer or a Sequential, got "
        f"{type(model_or_layer).__name__} (a cell's steps: prepare the layer and call its step)"
    )


__all__ = ["PreparedLayer", "PreparedModel", "prepare"]
