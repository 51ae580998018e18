"""A model file's zip archive, read at a cost bounded by its real bytes (``BoundedZip``,
which Keras's .keras files use too, and ``Archive``, the .npz of lstmcore's own).

Every size the archive claims is checked before anything is read or allocated: member
sizes against the file's size and the expansion limit, each .npy header (read alone,
without its data) against the member's size. Data is read in chunks straight into an
array the caller allocated after checking the shape, and each member is read to its end
so that its CRC is checked. No member is ever unpickled: only the bytes of plain float
and uint8 arrays are read, never through ``np.load``.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from lstmcore.nn.model_files._format import (
    EXPANSION_SLACK,
    HEADER,
    MAX_DIRECTORY_BYTES,
    MAX_EXPANSION,
    MAX_HEADER_BYTES,
    MAX_MEMBER_NAME,
    MAX_NPY_HEADER,
    ModelFileError,
    clip,
    short,
)

# What the zip and .npy readers raise on bytes that are not what they claim to be.
UNREADABLE = (
    ValueError,  # UnicodeDecodeError and NumPy's header errors among them
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    NotImplementedError,
    SyntaxError,
    OverflowError,
    tokenize.TokenError,  # NumPy's fallback parser for headers written by Python 2
)
_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_CHUNK = 2**20
_END_RECORD = 22  # bytes of a zip's end-of-central-directory record without its comment


class ArrayHeader:
    """What a member's .npy header declares: dtype, shape, Fortran order."""

    def __init__(self, dtype, shape, fortran_order):
        self.dtype, self.shape, self.fortran_order = dtype, shape, fortran_order

    def text(self):
        return f"{clip(self.dtype, 40)} {short(self.shape)}"


class BoundedZip:
    """The members of the zip archive at ``path`` by key (``_key`` of the member name),
    each size it claims checked against the file before anything is read.

    Use as a context manager; every problem is a ModelFileError naming the file. The
    model files' .npz (``Archive``) and Keras's .keras files are such archives; so are
    fit's checkpoints (``nn._checkpoint``), whose subclass says ``noun`` and ``fail`` its own way.
    """

    noun = "model file"  # what the archive is, in messages

    def __init__(self, path, file=None, size=None):
        """``file``: the open regular file at ``path`` (``_load.open_model_file``), of
        ``size`` bytes, starting as a zip archive does; None: opened here, and checked to be
        a regular file that starts as ``_check_start`` wants. Closed with the archive."""
        self.path = path
        if file is None:
            file, size = self._open(path)
        self._file, self.size = file, size
        try:
            self._zip = self._open_zip()
            self.members = self._checked_members()
        except BaseException:
            self.close()
            raise
        self.weights = set(self.members) - {HEADER}

    def close(self):
        zipped = getattr(self, "_zip", None)
        if zipped is not None:
            zipped.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _open(self, path):
        # O_NONBLOCK: opening a FIFO to read would wait for a writer; a regular file
        # ignores it (and anything else is refused below)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        file = os.fdopen(descriptor, "rb")
        try:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise self.fail("not a regular file, so not a model file")
            self._check_start(file.read(6))
            file.seek(0)
        except BaseException:
            file.close()
            raise
        return file, status.st_size

    def fail(self, problem):
        return ModelFileError(f"{self.path}: {problem}")

    # ----------------------------------------------------------------- the archive

    def _open_zip(self):
        directory = self._directory_size()
        if directory is not None and directory > MAX_DIRECTORY_BYTES:
            raise self.fail(
                f"a zip directory of {directory} bytes; at most {MAX_DIRECTORY_BYTES} are read "
                f"(some {MAX_DIRECTORY_BYTES // 100} members)"
            )
        self._file.seek(0)
        try:
            return zipfile.ZipFile(self._file)
        except UNREADABLE as error:
            raise self.fail(f"damaged or truncated {self.noun} ({clip(error)})") from error

    def _check_start(self, start):
        """Refuses a file whose first bytes are not a zip's."""
        if not start.startswith(b"PK\x03\x04"):
            raise self.fail("not a zip archive")

    def _key(self, name):
        """A member's key in ``members``."""
        return name

    def _directory_size(self):
        """The size of the central directory that zipfile would parse, from the end record
        (ZIP64's when there is one), found as zipfile finds it; None without one (zipfile
        then says what is wrong). zipfile makes a ZipInfo of some 400 bytes of each entry,
        which can be as short as 46 bytes: that work is bounded here, before it starts."""
        tail_size = min(self.size, _END_RECORD + 2**16 - 1)
        self._file.seek(self.size - tail_size)
        tail = self._file.read(tail_size)
        if tail[-_END_RECORD:].startswith(b"PK\x05\x06") and tail.endswith(b"\0\0"):
            at = len(tail) - _END_RECORD
        else:
            at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _END_RECORD:
            return None
        directory = struct.unpack_from("<L", tail, at + 12)[0]
        # zipfile reads a ZIP64 end record just before its locator, just before this one
        locator = at - 20
        if (
            locator - 56 >= 0
            and tail[locator : locator + 4] == b"PK\x06\x07"
            and tail[locator - 56 : locator - 52] == b"PK\x06\x06"
        ):
            directory = struct.unpack_from("<Q", tail, locator - 56 + 40)[0]
        return directory

    def _checked_members(self):
        members = {}
        claimed = 0
        for info in self._zip.infolist():
            name = info.filename
            where = f"archive member {short(name)}"
            if len(name) > MAX_MEMBER_NAME:
                raise self.fail(f"an archive member name of {len(name)} characters (at most {MAX_MEMBER_NAME})")
            key = self._key(name)
            if key in members:
                raise self.fail(f"{where} appears twice")
            if info.flag_bits & 0x1:
                raise self.fail(f"{where} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.fail(f"{where}: expected compression stored or deflated, got method {short(info.compress_type)}")
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise self.fail(
                    f"{where}: stored, so expected its size {info.file_size} bytes also compressed, got {info.compress_size}"
                )
            if info.header_offset + info.compress_size > self.size:
                raise self.fail(
                    f"{where} claims {info.compress_size} bytes at offset {info.header_offset}, past the "
                    f"end of the {self.size}-byte file (truncated?)"
                )
            claimed += info.file_size
            members[key] = info
        limit = MAX_EXPANSION * self.size + EXPANSION_SLACK
        if claimed > limit:
            raise self.fail(
                f"the members claim {claimed} bytes; a {self.size}-byte file may expand to at most {limit} (a zip bomb?)"
            )
        return members

    @contextlib.contextmanager
    def _stream(self, key):
        """The member's decompressed bytes as a stream; read errors become ModelFileError."""
        try:
            with self._zip.open(self.members[key]) as stream:
                yield stream
        except ModelFileError:
            raise
        except UNREADABLE as error:
            raise self.fail(f"member {short(key)} cannot be read ({clip(error)})") from error

    def copy_to(self, key, file):
        """Writes the member's bytes to the binary ``file``, in chunks, checking its CRC
        (zipfile stops at the size the member declares, which was checked at opening)."""
        with self._stream(key) as stream:
            while chunk := stream.read(_CHUNK):
                file.write(chunk)

    def read_bytes(self, key, limit):
        """The member's bytes, refused unfinished when it declares more than ``limit``."""
        declared = self.members[key].file_size
        if declared > limit:
            raise self.fail(f"member {short(key)} declares {declared} bytes; at most {limit} are read")
        with self._stream(key) as stream:
            data = stream.read(limit)
            if stream.read(1):  # zipfile's own bound; reaching the end checks the CRC
                raise self.fail(f"member {short(key)} holds more than {limit} bytes")
        return data


class Archive(BoundedZip):
    """The members of the .npz at ``path`` by key (the member name without ".npy")."""

    def _check_start(self, start):
        if start.startswith(b"\x93NUMPY"):
            raise self.fail("a single .npy array, not an lstmcore model file (.npz)")
        if not start.startswith(b"PK\x03\x04"):
            raise self.fail("not an lstmcore model file (not an .npz archive)")

    def _key(self, name):
        return name.removesuffix(".npy")

    # ----------------------------------------------------------------- members

    @contextlib.contextmanager
    def _member(self, key):
        """(stream after the .npy header, its ArrayHeader); read errors become ModelFileError."""
        with self._stream(key) as stream:
            yield stream, self._array_header(key, self.members[key], stream)

    def _array_header(self, key, info, stream):
        version = np.lib.format.read_magic(stream)
        if version not in _READERS:
            raise self.fail(f"member {short(key)}: expected .npy format 1.0 or 2.0, got {short(version)}")
        try:
            shape, fortran_order, dtype = _READERS[version](stream, max_header_size=MAX_NPY_HEADER)
        except (MemoryError, RecursionError) as error:
            # Python's parser gives up so on a deeply nested text, which is at most
            # MAX_NPY_HEADER characters here: a hostile header, not a lack of memory.
            raise self.fail(f"member {short(key)}: its .npy header is too complex to parse") from error
        header = ArrayHeader(dtype, shape, fortran_order)
        if dtype.hasobject:
            raise self.fail(f"member {short(key)} holds Python objects ({header.text()}); a {self.noun} holds only numbers")
        data_bytes = math.prod(shape) * dtype.itemsize
        held = info.file_size - stream.tell()
        if data_bytes != held:
            raise self.fail(
                f"member {short(key)}: its .npy header declares {header.text()}, {data_bytes} bytes, "
                f"but the member holds {held} bytes of data"
            )
        return header

    def header_bytes(self):
        """The JSON header's bytes, read once its member's .npy header declared a size
        within the limit."""
        if HEADER not in self.members:
            raise self.fail("an .npz archive without an lstmcore header, not a model file")
        declared = self.array_header(HEADER)
        if declared.dtype != np.uint8 or len(declared.shape) != 1:
            raise self.fail(f"expected the header as uint8 bytes (n,), got {declared.text()}")
        if declared.shape[0] > MAX_HEADER_BYTES:
            raise self.fail(f"a header of {declared.shape[0]} bytes; at most {MAX_HEADER_BYTES} are read")
        raw = np.empty(declared.shape, np.uint8)
        self.read_into(HEADER, raw)
        return raw.tobytes()

    def array_header(self, key):
        """The member's ArrayHeader, read without reading its data."""
        with self._member(key) as (_, header):
            return header

    def read_into(self, key, array):
        """Fills ``array`` (C-contiguous, of the member's dtype and shape, checked by the
        caller through ``array_header``) with the member's data, checking its CRC."""
        with self._member(key) as (stream, header):
            if header.dtype != array.dtype or tuple(header.shape) != array.shape:
                raise self.fail(f"member {short(key)} changed while it was read")
            target = np.empty(array.shape[::-1], array.dtype) if header.fortran_order else array
            view = memoryview(target).cast("B")
            done = 0
            while done < len(view):
                chunk = stream.read(min(_CHUNK, len(view) - done))
                if not chunk:
                    raise self.fail(f"member {short(key)} ends after {done} of its {len(view)} bytes of data")
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
            if stream.read(1):  # reaching the end is what checks the CRC
                raise self.fail(f"member {short(key)} holds more data than its .npy header declares")
            if header.fortran_order:
                array[...] = target.T
