"""Writing a model file: the header and the weights into one .npz archive or one
safetensors file (by the path's suffix), atomically."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from lstmcore._typing import Model
from lstmcore._util.atomic import write_atomically
from lstmcore.nn._metadata import check_metadata
from lstmcore.nn.model_files import _safetensors
from lstmcore.nn.model_files._format import FORMAT, HEADER, SAFETENSORS_SUFFIX, VERSION
from lstmcore.nn.model_files._header import LAYER_TYPES


def save(model: Model, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` atomically (``lstmcore._util.atomic``: a temporary
    file beside it, flushed and fsynced, then renamed over it; a symlink is written
    through and a replaced file's mode kept): safetensors when ``path`` ends in
    ".safetensors" (any case; it needs the safetensors package), an .npz archive
    otherwise, whatever the suffix."""
    if writes_safetensors(path):
        _safetensors.serializer()  # missing: said before any work, and no temporary file made
    config = model.get_config()
    for index, (entry, layer) in enumerate(zip(config["layers"], model.layers)):
        if LAYER_TYPES.get(entry["type"]) is not type(layer):
            raise ValueError(
                f"cannot save layer {index} of type {type(layer).__name__}: model files hold only {sorted(LAYER_TYPES)}"
            )
    arrays: dict[str, Any] = {}
    for name, value in model.params.items():
        value = np.asarray(value)
        if value.dtype.kind != "f":
            raise ValueError(f"expected params[{name!r}] as a float array, got dtype {value.dtype}")
        arrays[name] = value
    write_model_file(path, config["layers"], model.metadata, arrays)


def write_model_file(
    path: str | os.PathLike[str],
    layers: list[dict[str, Any]],
    metadata: Any,
    arrays: dict[str, np.ndarray],
    precision: str | None = None,
) -> None:
    """Writes the header of ``layers`` (their type and config), ``metadata`` and
    ``precision`` (None: float weights) with ``arrays`` by qualified name, atomically."""
    metadata = check_metadata(metadata)  # it may have been reassigned since construction
    fields = {"format": FORMAT, "version": VERSION, "layers": layers, "metadata": metadata}
    if precision is not None:
        fields["precision"] = precision
    header = json.dumps(fields, allow_nan=False)
    if writes_safetensors(path):
        _safetensors.write(path, header, arrays)
    else:
        members: dict[str, Any] = {**arrays, HEADER: np.frombuffer(header.encode("utf-8"), np.uint8)}
        write_atomically(path, lambda file: np.savez(file, **members))


def writes_safetensors(path: str | os.PathLike[str]) -> bool:
    """Whether ``save`` writes ``path`` as safetensors (rather than .npz)."""
    return os.fspath(path).lower().endswith(SAFETENSORS_SUFFIX)
