"""Stale tapes: a forward pass records fingerprints of the parameters it read, and
backward refuses its tape when they changed since (an optimizer step, an in-place write,
a replaced array), since the gradients would match neither the old nor the new weights.

The fingerprint (cpp/include/lstmcore/fingerprint.hpp) reads each array once at memory
speed; any change of a single element is always detected.
"""

from __future__ import annotations

import lstmcore._core as _core


def fingerprints(arrays):
    """{name: fingerprint} of C-contiguous arrays, as a tape records them."""
    return {name: _core.fingerprint(value) for name, value in arrays.items()}


def check_unchanged(recorded, arrays, owner):
    """A ValueError when an array differs from the one ``recorded`` at the forward pass."""
    for name, value in arrays.items():
        if _core.fingerprint(value) != recorded[name]:
            raise ValueError(
                f"{owner}.params[{name!r}] changed since the forward pass that recorded this tape: "
                "expected the parameters of that forward pass; run forward again after changing them"
            )
