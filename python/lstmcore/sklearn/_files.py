"""What a model file saved by a sequence estimator holds for it, and the checks of it.

The estimator's entry lives under ``model.metadata["lstmcore.sklearn"]``: which estimator,
its parameters as the fit used them, the fitted attributes that are not weights (the
sequence shape, feature names, classes or target scaling) and the number of epochs run.
A file is checked once, when it is loaded: each entry's type and range, and the layers
against the parameters, so that an edited or foreign file is a ``ModelFileError`` naming
the file and the entry, never an estimator whose predictions are nonsense.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from lstmcore.nn import Dense, LastStep, ModelFileError, Sequential

KEY = "lstmcore.sklearn"
VERSION = 1


def describe(estimator: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The metadata entry of a fitted estimator (JSON values)."""
    entry = {
        "estimator": type(estimator).__name__,
        "version": VERSION,
        "params": params,
        "n_features_in": int(estimator.n_features_in_),
        "input_size": int(estimator.input_size_),
        "n_iter": int(estimator.n_iter_),
        **estimator._target_entries(),
    }
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        entry["feature_names_in"] = [str(name) for name in names]
    return entry


class Entries:
    """Reads the estimator's entry of a loaded model, each refusal one ModelFileError."""

    def __init__(self, model: Sequential, path: str | os.PathLike[str], estimator: str) -> None:
        self.model, self.path = model, os.fspath(path)
        entry = model.metadata.get(KEY)
        if not isinstance(entry, dict) or entry.get("estimator") != estimator:
            found = "no estimator" if not isinstance(entry, dict) else f"a {str(entry.get('estimator'))[:40]!r}"
            raise ModelFileError(f"{self.path}: expected a model saved by {estimator}.save, got {found} in its metadata")
        self.entry = entry
        if type(entry.get("version")) is not int or entry["version"] != VERSION:
            raise self.refuse("version", f"{VERSION} (a newer lstmcore may read it)")

    def refuse(self, key: str, expected: str) -> ModelFileError:
        given = repr(self.entry[key]) if key in self.entry else "nothing"
        if len(given) > 80:
            given = given[:77] + "..."
        return ModelFileError(f"{self.path}: expected metadata[{KEY!r}][{key!r}] as {expected}, got {given}")

    def params(self, names: list[str]) -> dict[str, Any]:
        params = self.entry.get("params")
        if not isinstance(params, dict) or sorted(params) != sorted(names):
            raise self.refuse("params", f"an object of the parameters {', '.join(names)}")
        return params

    def whole_number(self, key: str, low: int = 1) -> int:
        value = self.entry.get(key)
        if type(value) is not int or value < low:
            raise self.refuse(key, f"an integer >= {low}")
        return value

    def numbers(self, key: str, count: int, *, positive: bool = False) -> np.ndarray:
        value = self.entry.get(key)
        if not isinstance(value, list) or len(value) != count:
            value = None
        if value is None or not all(type(n) in (int, float) and math.isfinite(n) and (n > 0 or not positive) for n in value):
            raise self.refuse(key, f"a list of {count} finite numbers{' > 0' if positive else ''}")
        return np.asarray(value, dtype=np.float64)

    def feature_names(self, count: int) -> list[str] | None:
        if "feature_names_in" not in self.entry:
            return None
        names = self.entry["feature_names_in"]
        if not isinstance(names, list) or len(names) != count or not all(isinstance(name, str) for name in names):
            raise self.refuse("feature_names_in", f"a list of {count} strings")
        return names

    def classes(self, count: int) -> np.ndarray:
        """The classes as the fit found them, in their dtype (strings, objects, numbers)."""
        dtype_text = self.entry.get("classes_dtype")
        try:
            dtype = np.dtype(dtype_text) if isinstance(dtype_text, str) and len(dtype_text) <= 16 else None
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "biufUO":
            raise self.refuse("classes_dtype", "a NumPy dtype of booleans, numbers, strings or objects")
        value = self.entry.get("classes")
        if not isinstance(value, list) or len(value) != count or any(isinstance(c, (list, dict)) for c in value):
            raise self.refuse("classes", f"a list of {count} labels (the outputs of the model)")
        if dtype.kind == "U" and not all(isinstance(label, str) for label in value):
            raise self.refuse("classes", "strings, as classes_dtype says")
        try:
            # Strings take the width of the longest, not the file's word for it: a claim of
            # a billion characters each would otherwise be allocated.
            classes = np.array(value, dtype=str if dtype.kind == "U" else dtype)
            distinct = len(np.unique(classes))
        except (TypeError, ValueError, OverflowError):  # unconvertible, or objects that do not sort
            raise self.refuse("classes", f"labels of dtype {dtype}") from None
        if classes.ndim != 1 or distinct != count:
            raise self.refuse("classes", f"{count} distinct labels")
        return classes

    def check_layers(self, cell_type: type, params: dict[str, Any], input_size: int) -> int:
        """The model's layers must be those fit builds from ``params``: returns the number
        of outputs."""
        layers = self.model.layers
        shapes = [type(layer) for layer in layers]
        if shapes != [cell_type, LastStep, Dense]:
            found = ", ".join(kind.__name__ for kind in shapes)
            wanted = f"{cell_type.__name__}, LastStep, Dense (cell={params['cell']!r})"
            raise ModelFileError(f"{self.path}: expected the layers {wanted}, got {found}")
        recurrent, head = layers[0], layers[2]
        directions = 2 if params["bidirectional"] else 1
        expected = (input_size, params["hidden_size"], params["num_layers"], params["bidirectional"])
        found_sizes = (recurrent.input_size, recurrent.hidden_size, recurrent.num_layers, recurrent.bidirectional)
        if found_sizes != expected or head.in_features != directions * params["hidden_size"]:
            raise ModelFileError(
                f"{self.path}: the layers do not match the metadata: expected {cell_type.__name__}(input_size, "
                f"hidden_size, num_layers, bidirectional) = {expected}, got {found_sizes}"
            )
        return int(head.out_features)
