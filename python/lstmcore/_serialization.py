"""Model files: one .npz archive, no pickle, written atomically, read at bounded cost.

The archive holds the JSON header (UTF-8 bytes as a uint8 array under ``HEADER``,
described in ``_model_header``) and one float array per parameter, keyed by its
qualified name ("0.weight_ih_l0"). docs/model-files.md describes the format, what
``load`` checks and its limits.

The path is used exactly as given: no ".npz" is appended (np.savez would append it to a
file name; writing through an open file avoids that).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from lstmcore._atomic import write_atomically
from lstmcore._model import Sequential, check_metadata
from lstmcore._model_archive import Archive
from lstmcore._model_format import FORMAT, HEADER, MAX_HEADER_BYTES, VERSION, ModelFileError, clip, short, some
from lstmcore._model_header import LAYER_TYPES, expected_weights, parse

__all__ = ["FORMAT", "HEADER", "LAYER_TYPES", "VERSION", "ModelFileError", "load", "save"]

# ----------------------------------------------------------------------- save


def save(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` atomically (``_atomic.write_atomically``: a temporary
    file beside it, flushed and fsynced, then renamed over it; a symlink is written
    through and a replaced file's mode kept)."""
    config = model.get_config()
    for index, (entry, layer) in enumerate(zip(config["layers"], model.layers)):
        if LAYER_TYPES.get(entry["type"]) is not type(layer):
            raise ValueError(
                f"cannot save layer {index} of type {type(layer).__name__}: model files hold only {sorted(LAYER_TYPES)}"
            )
    metadata = check_metadata(model.metadata)  # it may have been reassigned since construction
    header = {"format": FORMAT, "version": VERSION, "layers": config["layers"], "metadata": metadata}
    arrays: dict[str, Any] = {HEADER: np.frombuffer(json.dumps(header, allow_nan=False).encode("utf-8"), np.uint8)}
    for name, value in model.params.items():
        value = np.asarray(value)
        if value.dtype.kind != "f":
            raise ValueError(f"expected params[{name!r}] as a float array, got dtype {value.dtype}")
        arrays[name] = value
    write_atomically(path, lambda file: np.savez(file, **arrays))


# ----------------------------------------------------------------------- load


def load(path: str | os.PathLike[str]) -> Sequential:
    """The ``Sequential`` saved at ``path``; ``ModelFileError`` (a ValueError) when the
    file is not a complete lstmcore model file of a supported version, whatever it holds.

    Every size the file claims is checked against the archive and the layer
    configurations before a layer is built, so a file costs a small multiple of its real
    bytes however it lies; nothing in it is unpickled or executed.
    """
    path = os.fspath(path)
    with Archive(path) as archive:
        if HEADER not in archive.members:
            raise archive.fail("an .npz archive without an lstmcore header, not a model file")
        header = parse(_header_bytes(archive), archive.fail)
        names = _checked_weights(archive, header)
        model = _build(archive, header)
        for name in names:
            archive.read_into(name, model.params[name])
    return model


def _header_bytes(archive):
    declared = archive.array_header(HEADER)
    if declared.dtype != np.uint8 or len(declared.shape) != 1:
        raise archive.fail(f"expected the header as uint8 bytes (n,), got {declared.text()}")
    if declared.shape[0] > MAX_HEADER_BYTES:
        raise archive.fail(f"a header of {declared.shape[0]} bytes; at most {MAX_HEADER_BYTES} are read")
    raw = np.empty(declared.shape, np.uint8)
    archive.read_into(HEADER, raw)
    return raw.tobytes()


def _checked_weights(archive, header):
    """The names of the weights the header's layers hold, each checked against its
    member's .npy header (dtype and shape), before anything is allocated."""
    stored = set(archive.members) - {HEADER}
    expected, missing = {}, []
    for index, entry in enumerate(header["layers"]):
        for name, shape, dtype in expected_weights(entry["type"], entry["config"]):
            name = f"{index}.{name}"
            if name in stored:
                expected[name] = (shape, dtype)
            else:
                missing.append(name)
            if len(missing) > 4:  # enough to say so; a claim of a million layers stops here
                raise archive.fail(f"weights do not match the layers: missing {some(missing)} and perhaps more")
    unexpected = stored - set(expected)
    if missing or unexpected:
        parts = [
            f"{label} {some(names)}" for label, names in (("missing", missing), ("unexpected", unexpected)) if names
        ]
        raise archive.fail(f"weights do not match the layers: {', '.join(parts)}")
    for name, (shape, dtype) in expected.items():
        declared = archive.array_header(name)
        if declared.dtype != dtype or tuple(declared.shape) != shape:
            raise archive.fail(f"expected weight {name!r} as {dtype} {short(shape)}, got {declared.text()}")
    return list(expected)


def _build(archive, header):
    layers = []
    for index, entry in enumerate(header["layers"]):
        kind = entry["type"]
        try:
            layers.append(LAYER_TYPES[kind](**entry["config"]))
        except (TypeError, ValueError, OverflowError) as error:
            raise archive.fail(f"layer {index} ({kind}) has a bad config: {clip(error)}") from error
    try:
        return Sequential(layers, metadata=header["metadata"])
    except (TypeError, ValueError) as error:
        raise archive.fail(clip(error)) from error
