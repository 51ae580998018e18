"""What every task's training shares: the held-out split, the parameter count it reports,
and saving what it trained."""

from __future__ import annotations

import numpy as np

from lstmcore.cli._errors import TaskError
from lstmcore.nn.model_files import _safetensors
from lstmcore.nn.model_files._save import writes_safetensors


def chronological_split(count, validation_fraction):
    """Index of the first validation item: the last ``validation_fraction`` of ``count``."""
    if not 0.0 < validation_fraction < 1.0:
        raise TaskError(f"expected a validation fraction in (0, 1), got {validation_fraction}")
    split = count - max(1, round(count * validation_fraction))
    if split < 1:
        raise TaskError(f"{count} examples are too few to split into training and validation")
    return split


def count_params(model):
    return sum(int(np.size(array)) for array in model.params.values())


def check_model_output(out):
    """Fail before training, not after, when ``out`` names a .safetensors file and the
    package that writes one is missing."""
    if out and writes_safetensors(out):
        try:
            _safetensors.serializer()
        except ImportError as error:
            raise TaskError(f"cannot write {out}: {error}") from None


def save_trained(model, out, echo):
    """Save a trained model to ``out`` (None: not saved), refusing weights that diverged."""
    if out:
        if not all(np.isfinite(value).all() for value in model.params.values()):
            raise TaskError(f"training diverged (the weights hold NaN or infinity), so {out} was not written: lower --lr")
        try:
            model.save(out)
        except OSError as error:
            raise TaskError(f"cannot write {out}: {error.strerror or error}") from None
        echo(f"saved the model to {out}")
