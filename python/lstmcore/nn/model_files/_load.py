"""Reading a model file at bounded cost: every claim checked before a layer is built."""

from __future__ import annotations

import os
import stat

import numpy as np

from lstmcore.nn._model import Sequential
from lstmcore.nn.model_files import _safetensors
from lstmcore.nn.model_files._archive import Archive
from lstmcore.nn.model_files._format import SAFETENSORS_SUFFIX, ModelFileError, clip, short, some
from lstmcore.nn.model_files._header import LAYER_TYPES, expected_weights, parse


def load(path: str | os.PathLike[str]) -> Sequential:
    """The ``Sequential`` saved at ``path`` (.npz or safetensors, told apart by their
    bytes); ``ModelFileError`` (a ValueError) when the file is not a complete lstmcore
    model file of a supported version, whatever it holds.

    Every size the file claims is checked against the file and the layer configurations
    before a layer is built, so a file costs a small multiple of its real bytes however it
    lies; nothing in it is unpickled or executed. A quantized model's file is read by
    ``lstmcore.load``, which returns it quantized.
    """
    model, precision, _ = read_model_file(path)
    if precision is not None:
        raise ModelFileError(
            f"{os.fspath(path)}: a model quantized to {precision} (lstmcore.quantize): load it with lstmcore.load"
        )
    return model


def read_model_file(path: str | os.PathLike[str]) -> tuple[Sequential, str | None, dict[str, np.ndarray]]:
    """(model, precision, reduced) of the model file at ``path``, checked as ``load``
    says: the model with every float weight read; for a quantized model's file its
    precision and the weights stored reduced, by qualified name ("0.weight_hh_l0" and
    its "0.weight_hh_l0.scale"), whose float places in the model stay zero."""
    path = os.fspath(path)
    with open_model_file(path) as stored:
        header = parse(stored.header_bytes(), stored.fail)
        expected = _checked_weights(stored, header)
        model = _build(stored, header)
        reduced = {}
        for name, (shape, dtype) in expected.items():
            place = model.params.get(name)
            if place is None or place.dtype != dtype or place.shape != shape:
                place = reduced[name] = np.empty(shape, dtype)
            stored.read_into(name, place)
    return model, header.get("precision"), reduced


def open_model_file(path):
    """An Archive or a SafetensorsFile of the file at ``path``, as its first bytes say
    (a path ending in .safetensors is read as one unless it is a zip archive, so that a
    damaged one is told what is wrong with it as a safetensors file)."""
    # O_NONBLOCK: opening a FIFO to read would wait for a writer; a regular file ignores
    # it (and anything else is refused below)
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    file = os.fdopen(descriptor, "rb")
    try:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise ModelFileError(f"{path}: not a regular file, so not a model file")
        start = file.read(16)
        file.seek(0)
        if start.startswith(b"PK\x03\x04"):
            return Archive(path, file, status.st_size)
        if start.startswith(b"\x93NUMPY"):
            raise ModelFileError(f"{path}: a single .npy array, not an lstmcore model file (.npz)")
        if _safetensors.starts_like(start) or path.lower().endswith(SAFETENSORS_SUFFIX):
            return _safetensors.SafetensorsFile(path, file, status.st_size)
        raise ModelFileError(f"{path}: not an lstmcore model file (not an .npz archive, nor a safetensors file)")
    except BaseException:
        file.close()  # again, if a reader closed it as it failed: does nothing
        raise


def _checked_weights(stored, header):
    """{name: (shape, dtype)} of the weights the header's layers hold, each checked against
    what the file declares for it, before anything is allocated."""
    expected, missing = {}, []
    for index, entry in enumerate(header["layers"]):
        for name, shape, dtype in expected_weights(entry["type"], entry["config"], header.get("precision")):
            name = f"{index}.{name}"
            if name in stored.weights:
                expected[name] = (shape, dtype)
            else:
                missing.append(name)
            if len(missing) > 4:  # enough to say so; a claim of a million layers stops here
                raise stored.fail(f"weights do not match the layers: missing {some(missing)} and perhaps more")
    unexpected = stored.weights - set(expected)
    if missing or unexpected:
        parts = [f"{label} {some(names)}" for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise stored.fail(f"weights do not match the layers: {', '.join(parts)}")
    for name, (shape, dtype) in expected.items():
        declared = stored.array_header(name)
        if declared.dtype != dtype or tuple(declared.shape) != shape:
            raise stored.fail(f"expected weight {name!r} as {dtype} {short(shape)}, got {declared.text()}")
    return expected


def _build(stored, header):
    layers = []
    for index, entry in enumerate(header["layers"]):
        kind = entry["type"]
        try:
            layers.append(LAYER_TYPES[kind](**entry["config"]))
        except (TypeError, ValueError, OverflowError) as error:
            raise stored.fail(f"layer {index} ({kind}) has a bad config: {clip(error)}") from error
    try:
        return Sequential(layers, metadata=header["metadata"])
    except (TypeError, ValueError) as error:
        raise stored.fail(clip(error)) from error
