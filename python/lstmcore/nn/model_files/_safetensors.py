"""A model file in the safetensors format, written by the safetensors library and read at a
cost bounded by its real bytes.

The layout (https://huggingface.co/docs/safetensors): an 8-byte little-endian length N,
N bytes of JSON (``{"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [...],
"data_offsets": [begin, end]}, ...}``), then the tensors' bytes, ``data_offsets``
counted from the end of the JSON. lstmcore keeps its JSON header, the same text as in an
.npz, as the string ``__metadata__["__lstmcore_header__"]``, and names the tensors by the
.npz keys ("0.weight_ih_l0").

Reading does not go through the library. Its header limit is 100 MB, it reads by path
(a second open: the file checked need not be the file read) and through a memory map (a
file truncated meanwhile is a SIGBUS, not an error) or from one bytes object of the whole
file. Here the header length is checked against a limit and the file's size before the
header is read, the header's JSON before it is parsed, and every tensor's dtype, shape and
offsets before anything is allocated: the offsets tile the data exactly (no overlap, no gap,
nothing past the end or after the last tensor), as the library requires too, so a file
lstmcore loads the library loads as well. Then the bytes of each tensor are read from the
same open file straight into its layer's array, as an .npz member's are.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from lstmcore._util.atomic import write_atomically
from lstmcore.nn.model_files._archive import ArrayHeader
from lstmcore.nn.model_files._format import (
    HEADER,
    MAX_HEADER_BYTES,
    MAX_SAFETENSORS_HEADER,
    MAX_SAFETENSORS_VALUES,
    ModelFileError,
    short,
    some,
)
from lstmcore.nn.model_files._header import json_type, read_json

_LENGTH = 8  # bytes of the header's length, a little-endian uint64
_CHUNK = 2**20
_ENTRY_KEYS = ["data_offsets", "dtype", "shape"]
# The safetensors dtypes NumPy holds, so that a message can name what a tensor holds
# (the library's others, BF16 or F8_E4M3, are refused by name); all little-endian.
_DTYPES = {
    "BOOL": "?",
    "U8": "u1",
    "I8": "i1",
    "U16": "<u2",
    "I16": "<i2",
    "F16": "<f2",
    "U32": "<u4",
    "I32": "<i4",
    "F32": "<f4",
    "U64": "<u8",
    "I64": "<i8",
    "F64": "<f8",
}


def starts_like(start):
    """Whether the first bytes of a file look like a safetensors file: a length, then the
    JSON object."""
    return len(start) > _LENGTH and start[_LENGTH : _LENGTH + 1] == b"{"


class _Tensor:
    def __init__(self, dtype, shape, begin, end):
        self.dtype, self.shape, self.begin, self.end = dtype, shape, begin, end


class SafetensorsFile:
    """The tensors of the safetensors file at ``path`` by name (its ``weights``), each
    entry checked; use as a context manager. Every problem is a ModelFileError naming the
    file. ``file``: the open regular file at ``path``, of ``size`` bytes, closed with this."""

    def __init__(self, path, file, size):
        self.path, self._file, self.size = path, file, size
        try:
            entries = self._entries()
            self._header_text = self._lstmcore_header(entries.pop("__metadata__", None))
            self._tensors = self._checked_tensors(entries)
        except BaseException:
            self.close()
            raise
        self.weights = set(self._tensors)

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def fail(self, problem):
        return ModelFileError(f"{self.path}: {problem}")

    # ----------------------------------------------------------------- the header

    def _read(self, count, what):
        data = self._file.read(count)
        if len(data) != count:
            raise self.fail(f"the file ends within {what} ({len(data)} of its {count} bytes; truncated?)")
        return data

    def _entries(self):
        self._file.seek(0)
        (length,) = struct.unpack("<Q", self._read(_LENGTH, "the 8-byte length of its safetensors header"))
        if length > MAX_SAFETENSORS_HEADER:
            raise self.fail(f"a safetensors header of {length} bytes; at most {MAX_SAFETENSORS_HEADER} are read")
        if _LENGTH + length > self.size:
            raise self.fail(f"a safetensors header of {length} bytes claimed, past the end of the {self.size}-byte file")
        raw = self._read(length, "its safetensors header")
        if not raw.startswith(b"{"):  # the library refuses anything else, even a space
            raise self.fail(f"expected the safetensors header to start with '{{', got {short(raw[:20])}")
        self._data_start = _LENGTH + length
        entries = read_json(raw, self.fail, "the safetensors header", MAX_SAFETENSORS_VALUES)
        if type(entries) is not dict:
            raise self.fail(f"expected the safetensors header as a JSON object, got {json_type(entries)}")
        return entries

    def _lstmcore_header(self, metadata):
        """The lstmcore header's text from the metadata, where the format has only strings."""
        if metadata is None:
            raise self.fail(f"a safetensors file without {HEADER!r} in its metadata, not an lstmcore model file")
        if type(metadata) is not dict:
            raise self.fail(f"expected the safetensors __metadata__ as an object of strings, got {json_type(metadata)}")
        unexpected = [key for key in metadata if key != HEADER]
        if unexpected:
            raise self.fail(f"unexpected keys {some(unexpected)} in the safetensors __metadata__ (only {HEADER!r})")
        if HEADER not in metadata:
            raise self.fail(f"a safetensors file without {HEADER!r} in its metadata, not an lstmcore model file")
        text = metadata[HEADER]
        if type(text) is not str:
            raise self.fail(f"expected __metadata__[{HEADER!r}] as a string of JSON, got {json_type(text)}")
        return text

    def header_bytes(self):
        """The lstmcore header's bytes (UTF-8 JSON), within the .npz's header limit."""
        # a lone surrogate (JSON's "\ud800") becomes bytes the header's UTF-8 check refuses,
        # not an encoder's error
        raw = self._header_text.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_HEADER_BYTES:
            raise self.fail(f"a header of {len(raw)} bytes; at most {MAX_HEADER_BYTES} are read")
        return raw

    def _checked_tensors(self, entries):
        """{name: _Tensor} of the header's entries, their offsets tiling the data exactly."""
        data_size = self.size - self._data_start
        tensors = {}
        for name, entry in entries.items():
            where = f"tensor {short(name)}"
            if type(entry) is not dict or sorted(entry) != _ENTRY_KEYS:
                raise self.fail(
                    f'{where}: expected {{"dtype": ..., "shape": [...], "data_offsets": [begin, end]}}, got {short(entry)}'
                )
            dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
            if type(dtype) is not str:
                raise self.fail(f"{where}: expected its dtype as a string, got {short(dtype)}")
            if type(shape) is not list or not all(type(size) is int and size >= 0 for size in shape):
                raise self.fail(f"{where}: expected its shape as a list of integers >= 0, got {short(shape)}")
            if (
                type(offsets) is not list
                or len(offsets) != 2
                or not all(type(offset) is int for offset in offsets)
                or not 0 <= offsets[0] <= offsets[1]
            ):
                raise self.fail(f"{where}: expected data_offsets [begin, end] with 0 <= begin <= end, got {short(offsets)}")
            if offsets[1] > data_size:
                raise self.fail(
                    f"{where} claims bytes {offsets[0]} to {offsets[1]} of the {data_size} bytes of data (truncated?)"
                )
            tensors[name] = _Tensor(dtype, tuple(shape), *offsets)
        reached, previous = 0, None
        for name, tensor in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
            if tensor.begin != reached:
                how = "overlaps" if tensor.begin < reached else "leaves a gap after"
                after = f"tensor {short(previous)}" if previous is not None else "the header"
                raise self.fail(
                    f"tensor {short(name)} {how} {after}: it starts at byte {tensor.begin} of the data, expected {reached}"
                )
            reached, previous = tensor.end, name
        if reached != data_size:
            raise self.fail(f"{data_size - reached} bytes after the last tensor's data; the tensors must cover the data")
        return tensors

    # ----------------------------------------------------------------- tensors

    def array_header(self, name):
        """The tensor's dtype and shape as an ArrayHeader, checked against its bytes."""
        tensor = self._tensors[name]
        if tensor.dtype not in _DTYPES:
            raise self.fail(f"tensor {short(name)} has dtype {short(tensor.dtype)}, not one NumPy holds (F32, F64, ...)")
        dtype = np.dtype(_DTYPES[tensor.dtype])
        header = ArrayHeader(dtype, tensor.shape, False)
        data_bytes = math.prod(tensor.shape) * dtype.itemsize
        if data_bytes != tensor.end - tensor.begin:
            raise self.fail(
                f"tensor {short(name)} declares {header.text()}, {data_bytes} bytes, but its data_offsets "
                f"span {tensor.end - tensor.begin}"
            )
        return header

    def read_into(self, name, array):
        """Fills ``array`` (C-contiguous, of the tensor's dtype and shape, checked by the
        caller through ``array_header``) with the tensor's bytes."""
        header = self.array_header(name)
        if header.dtype != array.dtype or header.shape != array.shape:
            raise self.fail(f"tensor {short(name)} is not the array it was checked as")
        tensor = self._tensors[name]
        self._file.seek(self._data_start + tensor.begin)
        view = memoryview(array).cast("B")
        done = 0
        while done < len(view):
            count = self._file.readinto(view[done : done + _CHUNK])
            if not count:
                raise self.fail(f"tensor {short(name)} ends after {done} of its {len(view)} bytes (the file shrank?)")
            done += count


def write(path, header_text, arrays):
    """Writes ``arrays`` ({name: numeric array}) and ``header_text`` (the lstmcore header's
    JSON) to ``path`` as safetensors, atomically."""
    to_bytes = serializer()
    tensors = {name: np.ascontiguousarray(value) for name, value in arrays.items()}  # the library reads raw memory
    # Serialised inside the write, so that a failure of the library's leaves the old file
    # as one of the disk's does. The library builds the whole file in memory: a save holds
    # a copy of the weights while it writes.
    write_atomically(path, lambda file: file.write(to_bytes(tensors, metadata={HEADER: header_text})))


def serializer():
    """safetensors.numpy.save, or an ImportError saying how to install it."""
    try:
        from safetensors.numpy import save
    except ImportError as error:
        raise ModuleNotFoundError(
            'writing a .safetensors model file needs the safetensors package: pip install "lstmcore[safetensors]"',
            name="safetensors",
        ) from error
    return save
