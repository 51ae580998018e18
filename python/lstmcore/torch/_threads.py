"""One thread knob: inside these modules the core runs on ``torch.get_num_threads()`` threads.

PyTorch and the core load one OpenMP runtime in a process (whichever ``libgomp`` comes
first serves both), and a module's pass runs between PyTorch's operators on the calling
thread, so the two never run at once and share one pool of threads. What can differ is
the count: ``torch.set_num_threads`` sets PyTorch's for every thread but OpenMP's only for
the thread that called it. So before each pass the core is sized as PyTorch is, unless
the user has set the core's count (``lstmcore.set_num_threads(n)``), which then wins.
While PyTorch's count is the core's default (OpenMP's in this thread), nothing is set, and
the core keeps its default behaviour, which also steps down to one thread for small passes
when other processes load the cores (docs/production.md).
"""

from __future__ import annotations

import threading

import torch

import lstmcore._core as _core

_lock = threading.Lock()
_followed = 0  # the count this module set in the core, or 0 when it set none


def follow_torch() -> None:
    """Size the core's pool as PyTorch's, unless the user sized it themselves."""
    global _followed
    requested = _core.requested_threads()
    if requested and requested != _followed:
        return  # the user called lstmcore.set_num_threads(n)
    wanted = torch.get_num_threads()
    if requested == wanted or (not requested and _core.get_num_threads() == wanted):
        return
    with _lock:
        if requested:
            _core.set_num_threads(0)  # back to the default, to see whether it is PyTorch's count
        _followed = 0 if _core.get_num_threads() == wanted else wanted
        if _followed:
            _core.set_num_threads(wanted)
