"""Arrays for the core to write into, starting on a cache line.

The core's threads write neighbouring slices of each row of y, of the tapes and of the
gradients, cut at multiples of 64 bytes. NumPy's buffers start 16 or 32 bytes into a
line, so every cut fell inside a line that then bounced between the two threads' caches
each step: aligned, the training step ran measurably faster, most at small sizes.
"""

from __future__ import annotations

import math

import numpy as np

CACHE_LINE = 64


def empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` whose data starts on a cache line."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    # math.prod, the array interface and the ndarray constructor rather than np.prod, a
    # view chain or `.ctypes.data`: this runs several times a call, and at batch 1 their
    # overhead was a visible share of the whole call.
    buffer = np.empty(math.prod(shape) * dtype.itemsize + CACHE_LINE, np.uint8)
    return np.ndarray(shape, dtype, buffer, -buffer.__array_interface__["data"][0] % CACHE_LINE)


def zeros(shape, dtype):
    """As ``empty``, filled with zeros."""
    array = empty(shape, dtype)
    array.fill(0)
    return array


def empty_like(array):
    """``empty`` with ``array``'s shape and dtype."""
    return empty(array.shape, array.dtype)
