"""``lstmcore.load``: model files, quantized models' included (written by
``_reduced_file``).

A quantized model's file is a model file (docs/model-files.md) whose header says its
``precision``; its recurrent layers' weight matrices are stored as the kernels hold them
(int8 values and float32 row scales, or bfloat16 bits), so a load multiplies exactly
what was saved: nothing is quantized again. Everything else is as in a float32 file.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lstmcore.inference._model import PreparedModel
from lstmcore.inference._reduced_layer import Reduced, ReducedLayer
from lstmcore.nn import Sequential
from lstmcore.nn.model_files._format import ModelFileError
from lstmcore.nn.model_files._header import SCALE_SUFFIX
from lstmcore.nn.model_files._load import read_model_file
from lstmcore.rnn._prepared import PreparedLayer
from lstmcore.rnn._recurrent import _GatedRecurrent


def load(path: str | os.PathLike[str]) -> Sequential | PreparedModel:
    """The model saved at ``path``: a ``Sequential``, or for a quantized model's file
    (``quantize(...).save``) the quantized model, a ``PreparedModel`` holding exactly the
    saved weights. Checked and bounded as ``lstmcore.nn.load`` says."""
    model, precision, reduced = read_model_file(path)
    if precision is None:
        return model
    by_layer: dict[int, dict[str, Reduced]] = {}
    for name, values in reduced.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        index, local = name.split(".", 1)
        scales = reduced.get(name + SCALE_SUFFIX)
        if scales is not None and not (np.isfinite(scales).all() and (scales >= 0).all()):
            raise ModelFileError(f"{os.fspath(path)}: the row scales of {name!r} are not all finite and >= 0")
        by_layer.setdefault(int(index), {})[local] = (values, scales)
    if not any(isinstance(layer, _GatedRecurrent) for layer in model.layers):
        raise ModelFileError(f"{os.fspath(path)}: a model quantized to {precision} without a recurrent layer")
    index_of = {id(layer): index for index, layer in enumerate(model.layers)}

    def reduced_layer(layer: Any) -> PreparedLayer:
        try:
            return ReducedLayer(layer, precision, stored=by_layer.get(index_of[id(layer)], {}))
        except (KeyError, ValueError) as error:
            raise ModelFileError(f"{os.fspath(path)}: layer {index_of[id(layer)]} cannot be {precision}: {error}") from error

    return PreparedModel(model, reduced_layer)
