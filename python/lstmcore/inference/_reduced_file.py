"""Writing a quantized model's file.

A quantized model's file is a model file (docs/model-files.md) whose header says its
``precision``; its recurrent layers' weight matrices are stored as the kernels hold them
(int8 values and float32 row scales, or bfloat16 bits), so that a load (``_files``)
multiplies exactly what was saved: nothing is quantized again.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lstmcore.inference._reduced_layer import ReducedLayer
from lstmcore.nn.model_files._header import LAYER_TYPES, SCALE_SUFFIX
from lstmcore.nn.model_files._save import write_model_file
from lstmcore.rnn._prepared import PreparedLayer


def save_reduced(layers: list[Any], metadata: Any, precision: str, path: str | os.PathLike[str]) -> None:
    """Writes the layers of a quantized model (its ReducedLayer and its other layers) to
    ``path`` atomically, .npz or .safetensors by the suffix, as ``Sequential.save``."""
    entries, arrays = [], {}
    for index, layer in enumerate(layers):
        original = layer._layer if isinstance(layer, PreparedLayer) else layer
        if LAYER_TYPES.get(type(original).__name__) is not type(original):
            raise ValueError(
                f"cannot save layer {index} of type {type(original).__name__}: model files hold only {sorted(LAYER_TYPES)}"
            )
        entries.append({"type": type(original).__name__, "config": original.get_config()})
        stored = layer.reduced_params if isinstance(layer, ReducedLayer) else {}
        for name, value in original.params.items():
            if name in stored:
                values, scales = stored[name]
                arrays[f"{index}.{name}"] = values
                if scales is not None:
                    arrays[f"{index}.{name}{SCALE_SUFFIX}"] = scales
            else:
                arrays[f"{index}.{name}"] = np.asarray(value)
    write_model_file(path, entries, metadata, arrays, precision)
