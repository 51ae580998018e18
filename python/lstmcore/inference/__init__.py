"""Inference-only snapshots of layers and models: ``prepare``, and in reduced precision,
``quantize``."""

from __future__ import annotations

from typing import overload

from lstmcore.inference._files import load
from lstmcore.inference._model import PreparedModel
from lstmcore.inference._quantization import checked_precision
from lstmcore.inference._reduced_layer import ReducedLayer
from lstmcore.nn import Sequential
from lstmcore.rnn._prepared import PreparedLayer
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


@overload
def quantize(model_or_layer: Sequential, precision: str) -> PreparedModel: ...
@overload
def quantize(model_or_layer: _GatedRecurrent, precision: str) -> ReducedLayer: ...
def quantize(model_or_layer: Sequential | _GatedRecurrent, precision: str) -> PreparedModel | ReducedLayer:
    """A prepared snapshot (``prepare``) of an LSTM, GRU or RNN layer or a ``Sequential``
    whose recurrent weight matrices are held in ``precision``: 'int8' (a scale per row, activations
    quantized per row at each step) or 'bfloat16' (float32 sums).

    Called as what it was given; biases, states, outputs and every other layer stay
    float32. Its outputs differ from float32's by the rounding of the weights and the
    activations (docs/inference.md, "Reduced precision", gives the bounds measured).
    The layer-normalised LSTM, the reset-before GRU and a GRU's or RNN's chosen activations
    have no reduced kernel yet: a model holding one is refused, saying which.
    """
    precision = checked_precision(precision)
    if isinstance(model_or_layer, PreparedLayer | PreparedModel):
        raise TypeError("quantize takes the original layer or model, not a prepared one")
    if isinstance(model_or_layer, Sequential):
        return PreparedModel(model_or_layer, lambda layer: ReducedLayer(layer, precision))
    if isinstance(model_or_layer, _GatedRecurrent):
        return ReducedLayer(model_or_layer, precision)
    raise TypeError(f"quantize takes an lstmcore LSTM, GRU or RNN layer or a Sequential, got {type(model_or_layer).__name__}")


__all__ = ["PreparedLayer", "PreparedModel", "ReducedLayer", "load", "prepare", "quantize"]
