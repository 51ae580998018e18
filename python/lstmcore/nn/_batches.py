"""Mini-batches as slices: the one cut shared by fit, evaluate and predict.

Inference cuts once more (``predict_slices``): a row's output does not depend on the other
rows of its batch, bit for bit, as long as the batch has at least ``SMALLEST_BATCH`` rows;
one or two rows take the core's matrix-vector path, whose sums may round differently
(docs/design.md). So with batches of 3 rows or more, a last batch of 1 or 2 rows joins the
batch before it: every row is then computed as in any other batching of 3 rows or more
(``lstmcore.distributed.predict`` over Dask chunks relies on it).
"""

from __future__ import annotations

SMALLEST_BATCH = 3  # rows: fewer take the core's matrix-vector path


def batch_slices(count, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"expected batch_size as an int >= 1, got {batch_size!r}")
    return [slice(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def predict_slices(count, batch_size):
    """``batch_slices``, except that for a batch_size of 3 or more a last batch of 1 or 2
    rows joins the one before it (which then holds up to batch_size + 2 rows)."""
    slices = batch_slices(count, batch_size)
    if batch_size >= SMALLEST_BATCH and len(slices) > 1 and slices[-1].stop - slices[-1].start < SMALLEST_BATCH:
        tail = slices.pop()
        slices[-1] = slice(slices[-1].start, tail.stop)
    return slices
