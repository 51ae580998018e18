"""What a model file made by ``lstmcore train TASK`` must hold for its task.

The command line reads a model's ``metadata`` (the window of a forecaster, the vocabulary
of a character model, the classes of a classifier) to prepare its inputs and name its
outputs. A file whose metadata was edited or damaged is checked here once, when it is
loaded: types, ranges, vocabularies holding what is used, and one tiny pass of the model
on the inputs the metadata describes, whose output must have the shape the metadata
promises. Every problem is a TaskError naming the file and the entry, never a KeyError
later or a forecast made from nonsense. What each task needs is its module's
``check_metadata`` (``lstmcore.cli.tasks``); the entries are read here.
"""

from __future__ import annotations

import math

from lstmcore.cli._errors import TaskError
from lstmcore.cli._limits import MAX_VOCABULARY


def check(model, path, checks):
    """The model's metadata if it holds what its task needs (``checks``: task name -> a
    function of the model and its ``Entries``; a model of another task passes unchecked),
    else a TaskError."""
    meta = model.metadata
    checker = checks.get(meta.get("task"))
    if checker is not None:
        checker(model, Entries(meta, path))
    return meta


class Entries:
    """Reads metadata entries, each refused with the same one-line shape of message."""

    def __init__(self, meta, path):
        self.meta, self.path = meta, path

    def refuse(self, key, expected):
        given = repr(self.meta[key]) if key in self.meta else "nothing"
        if len(given) > 80:
            given = given[:77] + "..."
        return TaskError(
            f"{self.path}: expected metadata {key!r} as {expected}, got {given} (an edited or damaged model "
            "file: train it again)"
        )

    def whole_number(self, key, low, high):
        value = self.meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.refuse(key, f"a whole number in [{low}, {high:,}]")
        return value

    def positive_number(self, key):
        value = self.meta.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise self.refuse(key, "a finite number > 0")
        return value

    def text(self, key, *, optional=False):
        if optional and key not in self.meta:
            return None
        value = self.meta.get(key)
        if not isinstance(value, str):
            raise self.refuse(key, "a string")
        return value

    def names(self, key, least):
        value = self.meta.get(key)
        fits = isinstance(value, list) and least <= len(value) <= MAX_VOCABULARY
        if not (fits and all(isinstance(name, str) for name in value) and len(set(value)) == len(value)):
            raise self.refuse(key, f"a list of {least} to {MAX_VOCABULARY:,} distinct strings")
        return value

    def probe(self, model, x, expected, what, lengths=None):
        """One pass of the model on ``x``; its output must have shape ``expected``."""
        try:
            y = model.predict(x, lengths=lengths)
        except (ValueError, TypeError) as error:
            raise TaskError(f"{self.path}: the model cannot read {what}: {error}") from None
        if y.shape != expected:
            raise TaskError(
                f"{self.path}: the model gives outputs of shape {tuple(y.shape)} for {what}, "
                f"its metadata promises {expected} (an edited or damaged model file: train it again)"
            )
