"""Weights in reduced precision, computed in NumPy: what ``quantize`` stores and the
model files keep, exactly what the core's reduced kernels multiply.

int8: per output row j, ``scale[j] = max_k |W[j, k]| / 127`` and
``q[j, k] = round(W[j, k] / scale[j])`` in [-127, 127] (ties to even), so W ~ q * scale.
A row of zeros (or of values below about 4e-37, whose 127 / max|W_j| overflows) keeps
q = 0 and scale 0. bfloat16: the top 16 bits of each float32, rounded to
nearest even. The core converts the activations the same two ways, row by row, at every
step (docs/inference.md, "Reduced precision").
"""

from __future__ import annotations

import numpy as np

PRECISIONS = ("int8", "bfloat16")


def checked_precision(precision: object) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"expected precision 'int8' or 'bfloat16', got {precision!r}")
    return str(precision)


def quantize_int8(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q int8 (rows, depth), scale float32 (rows,)) of a float matrix, by rows."""
    w = np.asarray(weights, np.float32)
    if not np.isfinite(w).all():
        raise ValueError("cannot quantize weights holding NaN or infinity")
    largest = np.abs(w).max(axis=1)
    with np.errstate(divide="ignore", over="ignore"):
        inverse = (np.float32(127) / largest).astype(np.float32)
    # Rows of zeros, or so small that 127 / max|W_j| overflows (below about 4e-37): q = 0
    # and scale 0, as the core treats such rows of activations.
    usable = np.isfinite(inverse)
    q = np.clip(np.rint(w * np.where(usable, inverse, np.float32(0))[:, None]), -127, 127).astype(np.int8)
    return q, np.where(usable, largest / np.float32(127), np.float32(0)).astype(np.float32)


def to_bfloat16(values: np.ndarray) -> np.ndarray:
    """The bfloat16 bits (uint16) of float32 values, rounded to nearest even."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(values, np.float32))
    rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bits."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def reduce_matrix(weights: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, scales) of a weight matrix in ``precision``: int8 with row scales, or the
    bfloat16 bits with no scales."""
    if precision == "int8":
        return quantize_int8(weights)
    return to_bfloat16(weights), None


def restored(values: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """The float32 matrix that reduced values stand for."""
    if scales is None:
        return from_bfloat16(values)
    return values.astype(np.float32) * scales[:, None]
