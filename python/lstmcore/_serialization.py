"""Model files: one .npz archive, no pickle, written atomically.

The archive holds a JSON header (UTF-8 bytes as a uint8 array under ``HEADER``) and one
float array per parameter, keyed by its qualified name ("0.weight_ih_l0"). The header:
``{"format": "lstmcore-model", "version": 1, "layers": [{"type": "LSTM", "config":
{...}}, ...], "metadata": {...}}``. Layer types are looked up in ``LAYER_TYPES``; nothing
is ever imported or unpickled by a name read from a file.

The path is used exactly as given: no ".npz" is appended (np.savez would append it to a
file name; writing through an open file avoids that).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
import zlib

import numpy as np

from lstmcore._layers import Dense, Dropout, Embedding, LastStep, MeanPool
from lstmcore._model import Sequential, check_metadata
from lstmcore._gru import GRU
from lstmcore._lstm import LSTM

FORMAT = "lstmcore-model"
VERSION = 1
HEADER = "__lstmcore_header__"
LAYER_TYPES = {cls.__name__: cls for cls in (LSTM, GRU, Dense, Embedding, Dropout, LastStep, MeanPool)}


class ModelFileError(ValueError):
    """A file that is not a readable lstmcore model: damaged, foreign, or from an
    unsupported version; the message names the file and the problem."""


# ----------------------------------------------------------------------- save


def save(model, path):
    """Write ``model`` to ``path``: a temporary file beside it, flushed and fsynced, then
    renamed over ``path``, so a crash leaves either the old file or the new one."""
    path = os.fspath(path)
    config = model.get_config()
    for index, (entry, layer) in enumerate(zip(config["layers"], model.layers)):
        if LAYER_TYPES.get(entry["type"]) is not type(layer):
            raise ValueError(
                f"cannot save layer {index} of type {type(layer).__name__}: model files hold only {sorted(LAYER_TYPES)}"
            )
    metadata = check_metadata(model.metadata)  # it may have been reassigned since construction
    header = {"format": FORMAT, "version": VERSION, "layers": config["layers"], "metadata": metadata}
    arrays = {HEADER: np.frombuffer(json.dumps(header, allow_nan=False).encode("utf-8"), np.uint8)}
    for name, value in model.params.items():
        value = np.asarray(value)
        if value.dtype.kind != "f":
            raise ValueError(f"expected params[{name!r}] as a float array, got dtype {value.dtype}")
        arrays[name] = value

    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask set the mode, as for any new file (mkstemp: 0600)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _sync_directory(directory):
    # makes the rename itself durable; not possible on every platform (Windows)
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# ----------------------------------------------------------------------- load


def load(path):
    """The ``Sequential`` saved at ``path``; ``ModelFileError`` (a ValueError) when the
    file is not a complete lstmcore model file of a supported version."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        start = file.read(6)
    if start.startswith(b"\x93NUMPY"):
        raise ModelFileError(f"{path}: a single .npy array, not an lstmcore model file (.npz)")
    if not start.startswith(b"PK\x03\x04"):
        raise ModelFileError(f"{path}: not an lstmcore model file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if HEADER not in names:
                raise ModelFileError(f"{path}: an .npz archive without an lstmcore header, not a model file")
            header = _header(path, _entry(path, archive, HEADER))
            arrays = {name: _entry(path, archive, name) for name in names if name != HEADER}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise ModelFileError(f"{path}: damaged or truncated model file ({error})") from error
    return _model(path, header, arrays)


def _entry(path, archive, name):
    try:
        return archive[name]
    except ModelFileError:
        raise
    except (ValueError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        # allow_pickle=False makes numpy refuse object arrays here
        raise ModelFileError(f"{path}: entry {name!r} cannot be read ({error})") from error


def _header(path, raw):
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{path}: the header is not a byte string")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: the header is not valid JSON ({error})") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        given = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ModelFileError(f"{path}: expected format {FORMAT!r}, got {given!r}")
    if header.get("version") != VERSION:
        raise ModelFileError(
            f"{path}: model file version {header.get('version')!r} is not supported "
            f"(this lstmcore reads version {VERSION})"
        )
    layers = header.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelFileError(f"{path}: expected a non-empty layer list in the header, got {layers!r}")
    if not isinstance(header.get("metadata", {}), dict):
        raise ModelFileError(f"{path}: expected metadata as a JSON object, got {type(header['metadata']).__name__}")
    return header


def _model(path, header, arrays):
    layers = []
    for index, entry in enumerate(header["layers"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ModelFileError(f"{path}: layer {index}: expected {{'type': ..., 'config': {{...}}}}, got {entry!r}")
        kind = entry.get("type")
        if kind not in LAYER_TYPES:
            raise ModelFileError(f"{path}: layer {index} has unknown type {kind!r}; known: {sorted(LAYER_TYPES)}")
        try:
            layers.append(LAYER_TYPES[kind](**entry["config"]))
        except (TypeError, ValueError) as error:
            raise ModelFileError(f"{path}: layer {index} ({kind}) has a bad config: {error}") from error
    try:
        model = Sequential(layers, metadata=header.get("metadata", {}))
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: {error}") from error

    params = model.params
    missing = sorted(set(params) - set(arrays))
    extra = sorted(set(arrays) - set(params))
    if missing or extra:
        raise ModelFileError(f"{path}: weights do not match the layers: missing {missing}, unexpected {extra}")
    for name, value in arrays.items():
        expected = params[name]
        if value.shape != expected.shape or value.dtype != expected.dtype:
            raise ModelFileError(
                f"{path}: expected weight {name!r} as {expected.dtype} {expected.shape}, "
                f"got {value.dtype} {value.shape}"
            )
        params[name] = value
    return model
