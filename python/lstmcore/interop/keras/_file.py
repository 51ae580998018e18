"""A Keras 3 ``.keras`` file, read at a bounded cost: a zip holding ``config.json`` (the
model's layers, JSON) and ``model.weights.h5`` (their variables, HDF5).

The zip's claims are checked as a model file's are (``BoundedZip``). The config is read
only up to the model-file header's limits. The weights file is copied out of the zip to
a temporary directory, since HDF5 reads a file by seeking, and opened with h5py; each
dataset is reached through hard links only (no soft, external or virtual link, no
external raw storage: a hostile file could otherwise read other files into the
weights), and its declared shape and type are compared with what the config implies
before a byte of it is read, into an array allocated by the caller.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmcore.nn.model_files._archive import BoundedZip
from lstmcore.nn.model_files._format import MAX_HEADER_BYTES, ModelFileError, clip, short
from lstmcore.nn.model_files._header import read_json

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
METADATA = "metadata.json"
MAX_METADATA_BYTES = 2**16
# HDF5's own signature, at offset 0 of a file h5py writes (a user block could move it
# to 512, 1024, ...: Keras writes none)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class KerasZip(BoundedZip):
    def _check_start(self, start):
        if not start.startswith(b"PK\x03\x04"):
            raise self.fail("not a Keras model file (a .keras file is a zip archive)")


class KerasFile:
    """The parts of the .keras file at ``path``; a context manager (the weights file is a
    temporary copy). ``config`` and ``metadata`` are parsed JSON; ``weights`` is the h5py
    file, open once ``open_weights`` ran."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._h5: Any = None
        try:
            self._read(path)
        except BaseException:
            self.close()
            raise

    def _read(self, path: str) -> None:
        with KerasZip(path) as archive:
            for member in (CONFIG, WEIGHTS):
                if member not in archive.members:
                    found = ", ".join(short(name) for name in sorted(archive.members)[:6]) or "nothing"
                    raise self.fail(f"a zip without {member}, so not a Keras 3 model file (it holds {found})")
            self.config = read_json(archive.read_bytes(CONFIG, MAX_HEADER_BYTES), self.fail, CONFIG)
            self.metadata = {}
            if METADATA in archive.members:
                self.metadata = read_json(archive.read_bytes(METADATA, MAX_METADATA_BYTES), self.fail, METADATA)
            self.weights_bytes = archive.members[WEIGHTS].file_size
            self._directory = tempfile.TemporaryDirectory(prefix="lstmcore-keras-")
            self._weights_path = os.path.join(self._directory.name, WEIGHTS)
            with open(self._weights_path, "wb") as copy:
                archive.copy_to(WEIGHTS, copy)

    def fail(self, problem: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {problem}")

    def __enter__(self) -> KerasFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def open_weights(self) -> None:
        import h5py

        with open(self._weights_path, "rb") as file:
            if file.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
                raise self.fail(f"{WEIGHTS} is not an HDF5 file")
        try:
            self._h5 = h5py.File(self._weights_path, "r")
        except (OSError, ValueError) as error:
            raise self.fail(f"{WEIGHTS} cannot be opened ({clip(error)})") from error

    def group(self, path: tuple[str, ...]) -> Any:
        """The HDF5 group at ``path`` (names from the root), reached through hard links."""
        import h5py

        node = self._h5
        for depth, name in enumerate(path):
            where = "/".join(path[: depth + 1])
            try:
                link = node.get(name, getlink=True)
                if link is None:
                    raise self.fail(f"{WEIGHTS} has no {where}")
                if not isinstance(link, h5py.HardLink):
                    raise self.fail(f"{WEIGHTS}: {where} is a {type(link).__name__}; only hard links are followed")
                node = node[name]
            except ModelFileError:
                raise
            except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
                raise self.fail(f"{WEIGHTS}: {where} cannot be read ({clip(error)})") from error
            if depth < len(path) - 1 and not isinstance(node, h5py.Group):
                raise self.fail(f"{WEIGHTS}: expected {where} to be a group, got {type(node).__name__}")
        return node

    def read_vars(
        self, path: tuple[str, ...], shapes: Sequence[tuple[int, ...]], dtype: np.dtype, owner: str
    ) -> list[np.ndarray]:
        """The datasets ``path``/0, /1, ... of a Keras object's variables, exactly
        ``len(shapes)`` of them, each of its shape, read as ``dtype``; ``owner`` names the
        Keras layer in messages."""
        import h5py

        group = self.group(path)
        where = "/".join(path)
        if not isinstance(group, h5py.Group):
            raise self.fail(f"{WEIGHTS}: expected {where} to be a group of variables, got {type(group).__name__}")
        if len(group) != len(shapes):
            raise self.fail(f"{WEIGHTS}: expected {len(shapes)} variables of {owner} in {where}, got {len(group)}")
        arrays = []
        for index, shape in enumerate(shapes):
            dataset = self.group((*path, str(index)))
            name = f"{where}/{index}"
            if not isinstance(dataset, h5py.Dataset):
                raise self.fail(f"{WEIGHTS}: expected {name} ({owner}) to be a dataset, got {type(dataset).__name__}")
            try:
                declared, kind = dataset.shape, dataset.dtype
                external, virtual = dataset.external, dataset.is_virtual
            except (OSError, ValueError, TypeError, RuntimeError) as error:
                raise self.fail(f"{WEIGHTS}: {name} cannot be read ({clip(error)})") from error
            if external or virtual:
                raise self.fail(f"{WEIGHTS}: {name} keeps its data outside the file; refused")
            if kind.kind != "f" or kind.itemsize not in (2, 4, 8):
                raise self.fail(f"{WEIGHTS}: expected {name} ({owner}) as floats, got {clip(kind, 40)}")
            if tuple(declared) != tuple(shape):
                raise self.fail(
                    f"{WEIGHTS}: expected {name} ({owner}) of shape {short(tuple(shape))} as the config implies, "
                    f"got {short(declared)}"
                )
            array = np.empty(shape, dtype)
            if array.size:
                try:
                    dataset.read_direct(array)
                except (OSError, ValueError, TypeError, RuntimeError) as error:
                    raise self.fail(f"{WEIGHTS}: {name} cannot be read ({clip(error)})") from error
            arrays.append(array)
        return arrays

    def vars_name(self, path: tuple[str, ...]) -> str | None:
        """The Keras object name that Keras writes on the ``vars`` group at ``path`` (read
        by ``read_vars`` before), if it is there and a string."""
        try:
            value = self.group(path).attrs.get("name")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None
