"""Argument checks shared by the layers: clear errors naming the expected and the given."""

from __future__ import annotations

import numbers

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def shape_text(shape):
    """(4, 7, 12) -> '(4, 7, 12)'; (5,) -> '(5,)'."""
    return str(tuple(int(n) for n in shape))


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"expected {name} as a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"expected {name} >= 1, got {value}")
    return int(value)


def check_dtype(dtype):
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"expected dtype float32 or float64, got {dtype!r}") from error
    if resolved not in _FLOAT_DTYPES:
        raise ValueError(f"expected dtype float32 or float64, got {resolved.name}")
    return resolved


def as_numeric_array(value, name):
    """Any array-like of real numbers as an ndarray (no copy when it already is one)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"expected {name} as a numeric array, got {type(value).__name__}") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"expected {name} as a numeric array, got dtype {array.dtype}")
    return array
