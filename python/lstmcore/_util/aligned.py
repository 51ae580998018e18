"""Arrays for the core to write into, starting on a cache line.

The core's threads write neighbouring slices of each row of y, of the tapes and of the
gradients, cut at multiples of 64 bytes. NumPy's buffers start 16 or 32 bytes into a
line, so every cut fell inside a line that then bounced between the two threads' caches
each step. Training step (forward + backward), T = 100, 2 threads, arrays at offset 32
-> 0: I = H = 64, B = 64: 4.3 -> 3.8 ms; H = 128, B = 32: 6.6 -> 6.3 ms; H = 256,
B = 64: 47.2 -> 46.1 ms.
"""

from __future__ import annotations

import math

import numpy as np

CACHE_LINE = 64


def empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` whose data starts on a cache line."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    # math.prod, the array interface and the ndarray constructor: this runs several times
    # a call, and at batch 1 np.prod and a view chain made it 4 us each, `.ctypes.data`
    # 2.1 us (now 1.5).
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
