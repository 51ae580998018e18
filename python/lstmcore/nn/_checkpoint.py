"""``fit(..., checkpoint=DIR)``: the state of a training run after an epoch, in one file.

``DIR/checkpoint.npz`` is rewritten atomically after every epoch (``_util.atomic``: a crash
leaves the previous epoch's file or the new one). It is an .npz of plain arrays, read with
``allow_pickle=False`` (nothing in it is executed), holding:

- ``__checkpoint__``: a JSON header (UTF-8 bytes as uint8): the epochs done, the History so
  far, the early-stopping bookkeeping, the random states (fit's generator; the layers'
  dropout generators, one set per rank), the optimizer's type, rate and scalar state, the
  settings a resumed run must share (samples, batch size, seed, ...), and the names of the
  arrays below;
- ``param/<i>``: the parameters; ``best/<i>``: the best epoch's (restore_best_weights);
  ``optim/<i>``: the optimizer's per-parameter arrays (Adam's m and v, SGD's momentum).

Together these make a resumed run take the same steps as an uninterrupted one.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

import numpy as np

from lstmcore._util.atomic import write_atomically

FORMAT = "lstmcore-checkpoint"
VERSION = 1
FILE_NAME = "checkpoint.npz"
HEADER = "__checkpoint__"
# The layer attributes that hold a generator drawing in training (Dropout's masks; a
# recurrent layer's dropout, recurrent dropout and zoneout masks).
_GENERATORS = ("_rng", "_dropout_rng")
_TRAINING_RANDOMNESS = ("p", "dropout", "recurrent_dropout", "zoneout")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to another run."""


def path_of(directory: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(directory), FILE_NAME)


# ----------------------------------------------------------------------- generators


def _generators(model: Any) -> dict[str, tuple[Any, str]]:
    """The layers' generators by "index.attribute": (layer, attribute)."""
    found = {}
    for index, layer in enumerate(model.layers):
        for attribute in _GENERATORS:
            if isinstance(getattr(layer, attribute, None), np.random.Generator):
                found[f"{index}.{attribute}"] = (layer, attribute)
    return found


def draws_in_training(model: Any) -> bool:
    """Whether a layer draws random numbers in training (dropout, zoneout)."""
    return any(float(getattr(layer, name, 0) or 0) > 0 for layer in model.layers for name in _TRAINING_RANDOMNESS)


def generator_states(model: Any) -> dict[str, Any]:
    return {key: getattr(layer, attribute).bit_generator.state for key, (layer, attribute) in _generators(model).items()}


def set_generator_states(model: Any, states: dict[str, Any]) -> None:
    for key, (layer, attribute) in _generators(model).items():
        if key in states:
            getattr(layer, attribute).bit_generator.state = states[key]


def give_rank_its_streams(model: Any, rank: int) -> None:
    """Rank r > 0 draws its dropout masks from its own stream (the layer's generator jumped
    r times 2**128 draws ahead): with the same stream, every rank would drop the same
    elements of its rows. Rank 0 keeps the layer's own stream."""
    if rank == 0:
        return
    for layer, attribute in _generators(model).values():
        generator = getattr(layer, attribute)
        setattr(layer, attribute, np.random.Generator(generator.bit_generator.jumped(rank)))


# ----------------------------------------------------------------------- writing


def encode(
    *,
    model: Any,
    optimizer: Any,
    best_params: dict[str, np.ndarray] | None,
    state: dict[str, Any],
    layer_states: list[dict[str, Any]],
) -> bytes:
    """The checkpoint file's bytes. ``state``: fit's JSON-serialisable state (epochs done,
    history, generator state, settings, ...); ``layer_states``: each rank's layer
    generator states."""
    names = list(model.params)
    arrays: dict[str, np.ndarray] = {f"param/{i}": np.asarray(model.params[name]) for i, name in enumerate(names)}
    if best_params is not None:
        arrays.update({f"best/{i}": best_params[name] for i, name in enumerate(names)})
    optimizer_arrays: list[list[Any]] = []
    scalars: dict[str, dict[str, Any]] = {}
    for name, entry in optimizer.state.items():
        parts = entry.items() if isinstance(entry, dict) else [(None, entry)]
        for key, value in parts:
            if isinstance(value, np.ndarray):
                arrays[f"optim/{len(optimizer_arrays)}"] = value
                optimizer_arrays.append([name, key])
            elif key is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
                scalars.setdefault(name, {})[key] = value
            else:
                kind = type(value).__name__
                raise TypeError(f"cannot checkpoint the optimizer's state[{name!r}]: expected arrays and numbers, got {kind}")
    header = {
        "format": FORMAT,
        "version": VERSION,
        **state,
        "params": names,
        "best_params": best_params is not None,
        "layer_states": layer_states,
        "optimizer": {"type": type(optimizer).__name__, "lr": optimizer.lr, "arrays": optimizer_arrays, "scalars": scalars},
    }
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), np.uint8)
    file = io.BytesIO()
    np.savez(file, **arrays)  # type: ignore[arg-type]  # (numpy's stub reads **kwds as allow_pickle)
    return file.getvalue()


def write(directory: str | os.PathLike[str], data: bytes) -> None:
    os.makedirs(directory, exist_ok=True)
    write_atomically(path_of(directory), lambda file: file.write(data))


# ----------------------------------------------------------------------- reading


def read(directory: str | os.PathLike[str]) -> bytes | None:
    """The checkpoint's bytes, or None when the folder holds none."""
    try:
        with open(path_of(directory), "rb") as file:
            return file.read()
    except FileNotFoundError:
        return None


class Checkpoint:
    """A checkpoint read back: ``header`` (its JSON) and its arrays by kind."""

    def __init__(self, data: bytes, path: str) -> None:
        self.path = path
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            header = json.loads(arrays.pop(HEADER).tobytes().decode("utf-8"))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as error:
            raise CheckpointError(f"{path}: not a readable lstmcore checkpoint ({error})") from error
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an lstmcore checkpoint")
        if header.get("version") != VERSION:
            raise CheckpointError(f"{path}: expected checkpoint version {VERSION}, got {header.get('version')!r}")
        self.header = header
        names = header["params"]
        self.params = {name: arrays[f"param/{i}"] for i, name in enumerate(names)}
        self.best_params = {name: arrays[f"best/{i}"] for i, name in enumerate(names)} if header["best_params"] else None
        self.optimizer_arrays = arrays
        self.settings: dict[str, Any] = header["settings"]

    def fail(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {problem}")

    def check_run(self, settings: dict[str, Any]) -> None:
        """Refuses a checkpoint of another run: other data, batch size, seed, model."""
        for key, value in settings.items():
            if key == "ranks":
                continue
            saved = self.settings.get(key)
            if saved != value:
                raise self.fail(
                    f"written by a fit with {key}={_short(saved)}, this fit has {key}={_short(value)}: resume the same run, "
                    "or give another checkpoint folder"
                )

    def restore(self, model: Any, optimizer: Any, schedule: Any, rank: int, size: int) -> None:
        """The model's parameters, the optimizer's state and rate, the schedule's epoch and
        this rank's layer generators as they were (nothing changed when it refuses)."""
        saved = self.header["optimizer"]
        if saved["type"] != type(optimizer).__name__:
            raise self.fail(f"written with optimizer {saved['type']}, this fit uses {type(optimizer).__name__}")
        layer_states = self.header["layer_states"]
        if len(layer_states) != size and draws_in_training(model):
            raise self.fail(
                f"written by {len(layer_states)} rank(s), each drawing its own dropout masks; resume with "
                f"{len(layer_states)} rank(s) (or start a new checkpoint folder)"
            )
        for name, array in self.params.items():
            model.params[name] = array
        state: dict[str, Any] = {name: dict(values) for name, values in saved["scalars"].items()}
        for index, (name, key) in enumerate(saved["arrays"]):
            array = self.optimizer_arrays[f"optim/{index}"].copy()
            if key is None:
                state[name] = array
            else:
                state.setdefault(name, {})[key] = array
        optimizer.state = state
        if schedule is not None:
            for _ in range(self.header["epochs_done"]):
                schedule.step()
        optimizer.lr = saved["lr"]
        set_generator_states(model, layer_states[rank] if rank < len(layer_states) else layer_states[0])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
