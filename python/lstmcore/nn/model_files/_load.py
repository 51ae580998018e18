"""Reading a model file at bounded cost: every claim checked before a layer is built."""

from __future__ import annotations

import os

import numpy as np

from lstmcore.nn._model import Sequential
from lstmcore.nn.model_files._archive import Archive
from lstmcore.nn.model_files._format import HEADER, MAX_HEADER_BYTES, clip, short, some
from lstmcore.nn.model_files._header import LAYER_TYPES, expected_weights, parse


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
        parts = [f"{label} {some(names)}" for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
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
