"""NumPy's BLAS on one thread in Dense's products and while fit, evaluate and predict run.

NumPy's wheels bring OpenBLAS, whose idle threads keep spinning for a while after every
product. In a training loop a Dense layer's product comes between every two LSTM passes,
so those threads held a core that lstmcore's threads then waited for at every step's
barrier: `lstmcore demo`, and a loop of Sequential.forward/backward of one's own, ran
several times slower than with one BLAS thread. The products of Dense layers are small
next to the LSTM's, so one thread loses little on them. ``LSTMCORE_KEEP_BLAS_THREADS=1``
leaves the BLAS thread count alone.

Only OpenBLAS (NumPy's wheels) is handled, through its C entry points; with another
BLAS nothing changes. The count is process-wide: while the outermost use lasts, other
Python threads' products run on one thread too, and a count set inside it (by the user,
or by threadpoolctl) is replaced by the one from before when it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import threading
from collections.abc import Iterator

import numpy as np

# (get, set) entry points, by the names of NumPy's wheels (scipy-openblas, 64-bit ints)
# and of a plain OpenBLAS.
_ENTRY_POINTS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


@functools.lru_cache(maxsize=1)
def _openblas():
    """(get, set) of the OpenBLAS that NumPy loaded, or None."""
    numpy_dir = os.path.dirname(np.__file__)
    paths = []
    for pattern in ("../numpy.libs/*openblas*", ".dylibs/*openblas*", "../numpy.libs/*openblas*.dll"):
        paths.extend(glob.glob(os.path.join(numpy_dir, pattern)))
    for path in paths:
        try:
            library = ctypes.CDLL(path)  # the copy NumPy already loaded
        except OSError:
            continue
        for get_name, set_name in _ENTRY_POINTS:
            getter, setter = getattr(library, get_name, None), getattr(library, set_name, None)
            if getter is not None and setter is not None:
                getter.argtypes, getter.restype = [], ctypes.c_int
                setter.argtypes, setter.restype = [ctypes.c_int], None
                return getter, setter
    return None


def blas_threads():
    """NumPy's BLAS thread count, or None where it cannot be read."""
    functions = _openblas()
    return None if functions is None else functions[0]()


def set_blas_threads(count):
    """Sets NumPy's BLAS thread count; False where it cannot be set."""
    functions = _openblas()
    if functions is None:
        return False
    functions[1](int(count))
    return True


_lock = threading.Lock()
_depth = 0
_saved = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy's BLAS on one thread inside; the count before is restored when the outermost
    of nested (or concurrent) uses ends."""
    global _depth, _saved
    if os.environ.get("LSTMCORE_KEEP_BLAS_THREADS", "0") not in ("", "0") or _openblas() is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = blas_threads()
            set_blas_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                set_blas_threads(_saved)


def _reset_in_child():
    # A child of fork has only the forking thread: a use another thread was inside at fork
    # time never ends there, which would leave _depth > 0 and BLAS on one thread for good,
    # and _lock held if that thread was inside it.
    global _lock, _depth, _saved
    _lock = threading.Lock()
    if _depth > 0 and _saved is not None:
        set_blas_threads(_saved)
    _depth, _saved = 0, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
