"""One thread knob: inside these modules the core runs on ``torch.get_num_threads()`` threads.

PyTorch and the core each keep an OpenMP pool. They never run at once (a module's pass
runs between PyTorch's operators, on the calling thread), so the two pools do not compete
as long as both are sized to the same cores. The core follows PyTorch's count unless the
user has set the core's own (``lstmcore.set_num_threads``), which then wins. While PyTorch's
count equals the core's default, the core stays on its default, which also steps down to
one thread when other processes load the cores (docs/threads.md).
"""

from __future__ import annotations

import threading

import torch

import lstmcore._core as _core

_lock = threading.Lock()
_default = _core.get_num_threads() if _core.requested_threads() == 0 else 0
_followed = 0  # the count this module set in the core, or 0 when it set none


def follow_torch() -> None:
    """Size the core's pool as PyTorch's, unless the user sized it themselves."""
    global _followed, _default
    wanted = torch.get_num_threads()
    requested = _core.requested_threads()
    if requested != _followed:
        return  # the user called lstmcore.set_num_threads (a count, or 0 for the default)
    if requested == 0:
        if not _default:
            _default = _core.get_num_threads()
        if wanted == _default:
            return
    elif wanted == requested:
        return
    with _lock:
        if _core.requested_threads() != _followed:
            return
        target = 0 if wanted == _default else wanted
        _core.set_num_threads(target)
        _followed = target
