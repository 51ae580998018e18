"""Mini-batches as slices: the one cut shared by fit, evaluate and predict."""

from __future__ import annotations


def batch_slices(count, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"expected batch_size as an int >= 1, got {batch_size!r}")
    return [slice(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
