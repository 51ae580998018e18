"""A model's metadata holds JSON values only: what its model file gives back."""

from __future__ import annotations

import math

import numpy as np


def check_metadata(metadata):
    """A JSON-only copy of ``metadata``: what a model file gives back.

    NumPy scalars become Python numbers and tuples lists; anything else that JSON cannot
    hold exactly (arrays, non-str keys, NaN, objects) is an error naming where it is.
    """

    def convert(value, where):
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            value = value.item()
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"metadata{where} is {value}; JSON has no NaN or infinity")
            return value
        if isinstance(value, (list, tuple)):
            return [convert(item, f"{where}[{position}]") for position, item in enumerate(value)]
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise TypeError(f"metadata{where} has key {key!r}: expected str keys (JSON), got {type(key).__name__}")
            return {key: convert(item, f"{where}[{key!r}]") for key, item in value.items()}
        raise TypeError(
            f"metadata{where} is a {type(value).__name__}: expected JSON values "
            "(dict with str keys, list, str, int, float, bool, None)"
        )

    if not isinstance(metadata, dict):
        raise TypeError(f"expected metadata as a dict, got {type(metadata).__name__}")
    return convert(metadata, "")
