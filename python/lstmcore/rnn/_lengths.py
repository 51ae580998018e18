"""Variable-length batches, PyTorch's packed-sequence semantics on padded arrays.

The core wants the sequences alive at each time step to be the first rows of the batch,
so a batch is sorted longest first (``Packing``) and restored afterwards. The core runs
the backward direction of a bidirectional layer from each sequence's own end.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from lstmcore._util.checks import as_numeric_array, shape_text


def checked_lengths(lengths: ArrayLike, batch: int, steps: int) -> np.ndarray:
    """``lengths`` as an int64 (B,) array with values in [1, T], or a ValueError/TypeError."""
    lengths = as_numeric_array(lengths, "lengths")
    if lengths.shape != (batch,):
        raise ValueError(f"expected lengths of shape (B,) = {shape_text((batch,))}, got {shape_text(lengths.shape)}")
    if lengths.dtype.kind == "b":
        raise TypeError("expected integer lengths, got booleans")
    if lengths.dtype.kind == "f" and (not np.all(np.isfinite(lengths)) or np.any(lengths != np.round(lengths))):
        raise TypeError("expected integer lengths, got non-integral values")
    lengths = lengths.astype(np.int64)
    if lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(f"expected lengths in [1, T] = [1, {steps}], got values from {lengths.min()} to {lengths.max()}")
    return lengths


def lengths_from_mask(valid: np.ndarray, padding: str) -> np.ndarray:
    """(B,) lengths of the (B, T) flags ``valid``, each row valid on a prefix and padding
    after it (``padding`` says what padding is, for messages).

    Keras skips masked steps wherever they are; lengths express padding at the end only,
    so a masked step before a sequence's last valid one, or a sequence of padding alone,
    is a ValueError rather than a silently different result.
    """
    steps = valid.shape[1]
    empty = ~valid.any(axis=1)
    if empty.any():
        raise ValueError(
            f"expected at least one step that is not padding in every sequence, got sequence {int(np.argmax(empty))} "
            f"all padding ({padding})"
        )
    lengths = steps - np.argmax(valid[:, ::-1], axis=1)
    gaps = ~valid & (np.arange(steps) < lengths[:, None])
    if gaps.any():
        row, step = np.unravel_index(np.argmax(gaps), gaps.shape)
        raise ValueError(
            f"expected padding ({padding}) only after each sequence's last valid step, got sequence {row} padded at "
            f"step {step} before its last valid step {lengths[row] - 1}: lengths express trailing padding only "
            "(Keras's pad_sequences(..., padding='post'))"
        )
    return lengths.astype(np.int64)


class Packing:
    """A batch sorted by length, longest first: the order, its inverse, rows alive per step."""

    def __init__(self, lengths, steps):
        self.order = np.argsort(-lengths, kind="stable")
        self.inverse = np.argsort(self.order, kind="stable")
        self.lengths = lengths[self.order]  # sorted, longest first
        # (T,): how many sequences have a step at time t (non-increasing).
        self.batch_sizes = (self.lengths[None, :] > np.arange(steps)[:, None]).sum(axis=1).astype(np.int64)

    def sort(self, time_major):
        """(T, B, ...) or (L*D, B, H) arrays: batch axis 1 in sorted order (a copy)."""
        return np.ascontiguousarray(time_major[:, self.order])

    def restore(self, sorted_array):
        return np.ascontiguousarray(sorted_array[:, self.inverse])

    def last_steps(self):
        """(B,) time index of each sorted sequence's last step."""
        return self.lengths - 1
