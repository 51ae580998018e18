"""Argument checks shared by the layers: clear errors naming the expected and the given."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import SupportsInt

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def shape_text(shape: Iterable[SupportsInt]) -> str:
    """(4, 7, 12) -> '(4, 7, 12)'; (5,) -> '(5,)'."""
    return str(tuple(int(n) for n in shape))


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"expected {name} as a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"expected {name} >= 1, got {value}")
    return int(value)


def check_bool(value: object, name: str) -> bool:
    """True or False (NumPy's too): a string such as "False" is truthy, so is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"expected {name} as a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_dtype(dtype: DTypeLike) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"expected dtype float32 or float64, got {dtype!r}") from error
    if resolved not in _FLOAT_DTYPES:
        raise ValueError(f"expected dtype float32 or float64, got {resolved.name}")
    return resolved


def as_numeric_array(value: ArrayLike, name: str) -> np.ndarray:
    """Any array-like of real numbers as an ndarray (no copy when it already is one)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"expected {name} as a numeric array, got {type(value).__name__}") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"expected {name} as a numeric array, got dtype {array.dtype}")
    return array


def check_finite_real(value: object, name: str) -> float:
    """A real number that is neither NaN nor infinite, as a float: NaN in an option spreads
    to every output without an error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected {name} as a finite number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"expected {name} as a finite number, got {value}")
    return value


def param_array(value: ArrayLike, name: str, dtype: DTypeLike) -> np.ndarray:
    """A parameter as a C-contiguous array of ``dtype``: float arrays of another precision
    are converted (a copy), any other dtype is a TypeError naming the key.

    Strings, complex numbers and objects would convert silently (strings parsed, imaginary
    parts dropped); integer and bool arrays are refused too, since training updates a
    parameter in place and an integer array cannot hold the update.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # a ragged list
        raise TypeError(f"expected {name} as a float array ({np.dtype(dtype).name}), got {type(value).__name__}") from error
    if array.dtype.kind != "f":
        raise TypeError(f"expected {name} as a float array ({np.dtype(dtype).name}), got dtype {array.dtype}")
    return np.require(array, dtype=dtype, requirements=["C", "A"])  # aligned: the core reads whole floats
