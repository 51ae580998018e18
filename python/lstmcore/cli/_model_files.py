"""Model files as the command line reads them: a TaskError for every way a file can be
wrong (missing, unreadable, damaged, diverged, made for another task), never a traceback."""

from __future__ import annotations

import numpy as np

import lstmcore
from lstmcore.cli import _metadata
from lstmcore.cli._errors import TaskError


def read_model(path, checks):
    """Any lstmcore model file, or a TaskError naming what is wrong; one made for a task
    of ``checks`` (task name -> its metadata check) must hold what that task needs."""
    try:
        model = lstmcore.load(path)
    except FileNotFoundError:
        raise TaskError(f"no such model file: {path}") from None
    except IsADirectoryError:
        raise TaskError(f"{path} is a folder, not a model file") from None
    except OSError as error:
        raise TaskError(f"cannot read {path}: {error.strerror or error}") from None
    except lstmcore.ModelFileError as error:
        raise TaskError(str(error)) from None  # its message names the file
    except MemoryError:  # a real model too large for this machine (load checks the file's claims first)
        raise TaskError(f"{path}: its layers are too large to build here (out of memory)") from None
    for name, value in model.params.items():
        if not np.isfinite(value).all():
            raise TaskError(
                f"{path}: weight {name!r} holds NaN or infinity, so every output would be NaN "
                "(a diverged training run: train again, e.g. with a lower --lr)"
            )
    _metadata.check(model, path, checks)
    return model


def load_model(path, checks):
    """A model file made by ``lstmcore train TASK`` for one of the tasks of ``checks``
    (task name -> its metadata check), or a TaskError naming what is wrong."""
    model = read_model(path, checks)
    found = model.metadata.get("task")
    if found not in checks:
        made_by = f"a {found!r} model" if found else "a model without a task"
        wanted = " or ".join(repr(task) for task in checks)
        raise TaskError(f"{path} is {made_by}; this needs a {wanted} model (made by lstmcore train TASK)")
    return model
