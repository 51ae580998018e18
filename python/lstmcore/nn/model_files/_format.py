"""The model file format's names and limits, and the one error a bad file raises.

docs/model-files.md describes the format and why each limit is what it is. The limits
keep the cost of reading any file, however it lies, a small multiple of its real bytes.
"""

from __future__ import annotations

import reprlib

FORMAT = "lstmcore-model"
VERSION = 1
# The JSON header's place: the .npz member holding it (uint8), the key of the safetensors
# metadata holding it (a string)
HEADER = "__lstmcore_header__"
SAFETENSORS_SUFFIX = ".safetensors"  # save writes safetensors to a path ending so, else .npz

# The JSON header: layer configurations and the metadata (a vocabulary, class names).
MAX_HEADER_BYTES = 4 * 2**20
MAX_HEADER_DEPTH = 64  # nested lists and objects; metadata is the only deep part
# Numbers, lists and objects: each costs a Python object of 30-60 bytes however short its
# text ("[]," is 3 bytes, a list 56), while a string costs about its bytes.
MAX_HEADER_VALUES = 200_000
MAX_LAYERS = 1000  # entries of the header's layer list (Sequential's layers)
# The members together may expand to at most this multiple of the archive's size, plus
# the slack (which lets small deflated files of zero biases through). lstmcore writes
# stored members (1x); deflated real weights shrink by ~1.1x, so only a bomb exceeds it.
MAX_EXPANSION = 10
EXPANSION_SLACK = 2**20
# The zip's central directory: ~100 bytes per member as np.savez writes it (20000 members,
# a Sequential of 1000 layers or an LSTM of 1000 bidirectional layers with every option).
MAX_DIRECTORY_BYTES = 2 * 2**20
# A .safetensors model file's own JSON header: an entry of ~100 bytes per tensor (2 MiB:
# as many as the .npz directory admits members) and the lstmcore header as one JSON string
# in its metadata, which escaping ('"' written '\\"') at most doubles. The safetensors
# library itself would read a header of up to 100 MB.
MAX_SAFETENSORS_HEADER = 2 * MAX_HEADER_BYTES + MAX_DIRECTORY_BYTES
# Its values outside strings: some 11 per tensor entry (an object, its shape and offsets
# lists and their numbers), so about 20000 tensors again.
MAX_SAFETENSORS_VALUES = 16 * 20000
MAX_NPY_HEADER = 10000  # NumPy's own default for an .npy header's text
MAX_MEMBER_NAME = 1000
MAX_MESSAGE = 1000  # characters of an error message (the path included)
MAX_REPR = 80  # characters of one value quoted in a message


class ModelFileError(ValueError):
    """A file that is not a readable lstmcore model: damaged, foreign, hostile, or from an
    unsupported version; the message names the file and the problem (expected vs given)."""

    def __init__(self, message):
        message = str(message)
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        super().__init__(message)


_reprs = reprlib.Repr()
_reprs.maxlevel, _reprs.maxdict, _reprs.maxlist, _reprs.maxstring, _reprs.maxlong = 3, 4, 6, 60, 40
_reprs.maxother = MAX_REPR


def short(value):
    """``repr(value)`` in at most MAX_REPR characters, never building the whole of a long
    one: a file's claims can be megabytes long."""
    text = _reprs.repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def clip(text, limit=2 * MAX_REPR):
    """``text`` cut to ``limit`` characters (a message quoted inside another)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def some(names, count=4):
    """Up to ``count`` of ``names`` (sorted) and how many more, for a message."""
    names = sorted(names)
    shown = ", ".join(short(name) for name in names[:count])
    return f"[{shown}{f', ... ({len(names) - count} more)' if len(names) > count else ''}]"
