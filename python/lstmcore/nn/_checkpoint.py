"""``fit(..., checkpoint=DIR)``: the state of a training run after an epoch, in one file.

``DIR/checkpoint.npz`` is rewritten atomically after every epoch (``_util.atomic``: a crash
leaves the previous epoch's file or the new one). It is an .npz of plain arrays,
holding:

- ``__checkpoint__``: a JSON header (UTF-8 bytes as uint8): the epochs done, the History so
  far, the early-stopping bookkeeping, the random states (fit's generator; the layers'
  dropout generators, one set per rank), the optimizer's type, rate and scalar state, the
  settings a resumed run must share (samples, batch size, seed, ...), the seed fit used
  (drawn when it was given None: a resumed run holds out the same validation rows), and
  the names of the arrays below;
- ``param/<i>``: the parameters; ``best/<i>``: the best epoch's (restore_best_weights);
  ``optim/<i>``: the optimizer's per-parameter arrays (Adam's m and v, SGD's momentum).

Together these make a resumed run take the same steps as an uninterrupted one.

A checkpoint is read as a model file is, at a cost bounded by its real bytes, whatever it
claims (``model_files._archive.Archive``: member sizes, the expansion of deflated members,
no pickle; the JSON header's size, values and depth bounded before it is parsed). Every
value of the header is type-checked and every array's name, dtype and shape compared
with the model and the optimizer before anything is changed; anything else (an unknown
member, a missing key, an epoch count its history does not hold) is a CheckpointError
naming the file, the expected and the given.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import stat
from collections.abc import Iterator
from typing import Any

import numpy as np

from lstmcore._util.atomic import write_atomically
from lstmcore.nn.model_files._archive import UNREADABLE, Archive
from lstmcore.nn.model_files._format import short, some
from lstmcore.nn.model_files._header import json_type, read_json
from lstmcore.nn.optim import SGD, Adam, _Schedule

FORMAT = "lstmcore-checkpoint"
VERSION = 2  # 2: the seed fit used
FILE_NAME = "checkpoint.npz"
HEADER = "__checkpoint__"
# The layer attributes that hold a generator drawing in training (Dropout's masks; a
# recurrent layer's dropout, recurrent dropout and zoneout masks).
_GENERATORS = ("_rng", "_dropout_rng")
_TRAINING_RANDOMNESS = ("p", "dropout", "recurrent_dropout", "zoneout")
# The JSON header: its History takes some 7 values per epoch, the layers' generator states
# some 8 per generator and rank. Parsing costs about 50 bytes of Python objects per value.
MAX_HEADER_BYTES = 32 * 2**20
MAX_HEADER_VALUES = 2_000_000
MAX_EPOCHS = 10**6  # epochs done (each one's History is in the header too)
_HEADER_KEYS = (
    "format",
    "version",
    "epochs_done",
    "history",
    "best_epoch",
    "best_loss",
    "waited",
    "stopped_early",
    "rng",
    "seed",
    "settings",
    "params",
    "best_params",
    "layer_states",
    "optimizer",
)
_HISTORY_KEYS = ("loss", "lr", "epoch_time", "samples_per_s", "accuracy", "val_loss", "val_accuracy")
_HISTORY_ALWAYS = ("loss", "lr", "epoch_time", "samples_per_s")


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
    """The checkpoint's bytes, or None when the folder holds none; a path that is not a
    regular file (a FIFO, a device) is refused rather than read."""
    path = path_of(directory)
    try:
        # O_NONBLOCK: opening a FIFO to read would wait for a writer
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise CheckpointError(f"{path}: not a regular file, so not a checkpoint")
        return file.read()


class _Archive(Archive):
    """The checkpoint's .npz, read as a model file's is; its problems are CheckpointErrors."""

    noun = "checkpoint"

    def fail(self, problem):
        return CheckpointError(f"{self.path}: not a readable lstmcore checkpoint: {problem}")


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


class Checkpoint:
    """A checkpoint read back: ``header`` (its JSON, every value checked), the declared
    dtype and shape of each array, and ``seed`` (the one fit used). ``restore`` checks the
    arrays against the model and the optimizer, then reads them and changes those."""

    def __init__(self, data: bytes, path: str) -> None:
        self.path = path
        self._data = data
        with self._archive() as stored:
            header = self._read_header(stored)
            self._check_header(header)
            self.header = header
            self._check_members(stored)
            self.declared = {key: stored.array_header(key) for key in stored.members if key != HEADER}
        self.settings: dict[str, Any] = header["settings"]
        self.seed: int = header["seed"]
        self.best_params: dict[str, np.ndarray] | None = None  # read by restore

    def fail(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {problem}")

    @contextlib.contextmanager
    def _archive(self) -> Iterator[_Archive]:
        with _Archive(self.path, io.BytesIO(self._data), len(self._data)) as stored:
            yield stored

    # ----------------------------------------------------------------- the header

    def _read_header(self, stored: _Archive) -> dict[str, Any]:
        if HEADER not in stored.members:
            raise stored.fail(f"no {HEADER} member, so not an lstmcore checkpoint")
        declared = stored.array_header(HEADER)
        if declared.dtype != np.uint8 or len(declared.shape) != 1:
            raise stored.fail(f"expected the header as uint8 bytes (n,), got {declared.text()}")
        if declared.shape[0] > MAX_HEADER_BYTES:
            raise stored.fail(f"a header of {declared.shape[0]} bytes; at most {MAX_HEADER_BYTES} are read")
        raw = np.empty(declared.shape, np.uint8)
        stored.read_into(HEADER, raw)
        header = read_json(raw.tobytes(), stored.fail, "the header", MAX_HEADER_VALUES, finite=False)
        if type(header) is not dict or header.get("format") != FORMAT:
            raise self.fail("not an lstmcore checkpoint (its header names no format lstmcore-checkpoint)")
        if header.get("version") != VERSION:
            raise self.fail(f"expected checkpoint version {VERSION}, got {short(header.get('version'))}")
        return header

    def _expect(self, ok: bool, key: str, expected: str, value: Any) -> None:
        if not ok:
            raise self.fail(f"expected {key} as {expected}, got {json_type(value)} {short(value)}")

    def _check_header(self, header: dict[str, Any]) -> None:
        """Every value's type and range, and their agreement (the History holds the epochs done)."""
        missing = [key for key in _HEADER_KEYS if key not in header]
        unknown = [key for key in header if key not in _HEADER_KEYS]
        if missing or unknown:
            parts = [f"{label} {some(keys)}" for label, keys in (("missing", missing), ("unknown", unknown)) if keys]
            raise self.fail(f"the header's keys are not a checkpoint's: {', '.join(parts)}")
        done = header["epochs_done"]
        self._expect(_is_int(done) and 1 <= done <= MAX_EPOCHS, "epochs_done", f"an integer in [1, {MAX_EPOCHS}]", done)
        history = header["history"]
        self._expect(type(history) is dict, "history", "an object", history)
        for key in _HISTORY_ALWAYS:
            if key not in history:
                raise self.fail(f"expected history[{key!r}], the History holds {some(history)}")
        for key, values in history.items():
            if key not in _HISTORY_KEYS:
                raise self.fail(f"expected history's keys among {list(_HISTORY_KEYS)}, got {short(key)}")
            if type(values) is not list or len(values) != done or not all(map(_is_number, values)):
                given = f"{len(values)} value(s)" if type(values) is list else f"{json_type(values)}"
                raise self.fail(
                    f"expected history[{key!r}] as {done} number(s), one per epoch done (epochs_done={done}), got {given}"
                )
        best = header["best_epoch"]
        self._expect(best is None or (_is_int(best) and 0 <= best < done), "best_epoch", f"null or in [0, {done})", best)
        self._expect(_is_number(header["best_loss"]), "best_loss", "a number", header["best_loss"])
        waited = header["waited"]
        self._expect(_is_int(waited) and 0 <= waited <= done, "waited", f"an integer in [0, {done}]", waited)
        self._expect(type(header["stopped_early"]) is bool, "stopped_early", "a boolean", header["stopped_early"])
        self._expect(type(header["rng"]) is dict, "rng", "a generator's state (an object)", header["rng"])
        seed = header["seed"]
        self._expect(_is_int(seed) and seed >= 0, "seed", "an integer >= 0", seed)
        self._expect(type(header["settings"]) is dict, "settings", "an object", header["settings"])
        params = header["params"]
        ok = type(params) is list and all(type(name) is str for name in params)
        self._expect(ok, "params", "a list of parameter names", params)
        self._expect(type(header["best_params"]) is bool, "best_params", "a boolean", header["best_params"])
        states = header["layer_states"]
        ok = type(states) is list and len(states) >= 1 and all(type(state) is dict for state in states)
        self._expect(ok, "layer_states", "a list of objects, one per rank", states)
        saved = header["optimizer"]
        ok = type(saved) is dict and set(saved) == {"type", "lr", "arrays", "scalars"}
        self._expect(ok, "optimizer", "an object of type, lr, arrays and scalars", saved)
        self._expect(type(saved["type"]) is str, "optimizer type", "a string", saved["type"])
        lr = saved["lr"]
        self._expect(_is_number(lr) and math.isfinite(lr) and lr >= 0, "optimizer lr", "a finite number >= 0", lr)
        arrays = saved["arrays"]
        ok = type(arrays) is list and all(
            type(entry) is list and len(entry) == 2 and type(entry[0]) is str and (entry[1] is None or type(entry[1]) is str)
            for entry in arrays
        )
        self._expect(ok, "optimizer arrays", "a list of [parameter name, key or null]", arrays)
        if len({tuple(entry) for entry in arrays}) != len(arrays):
            raise self.fail("the optimizer's arrays name one parameter's state twice")
        scalars = saved["scalars"]
        ok = type(scalars) is dict and all(
            type(values) is dict and all(_is_number(value) for value in values.values()) for values in scalars.values()
        )
        self._expect(ok, "optimizer scalars", "an object of objects of numbers", scalars)

    def _check_members(self, stored: _Archive) -> None:
        """The archive holds exactly the arrays the header names: nothing unknown is read."""
        header = self.header
        count = len(header["params"])
        expected = {
            HEADER,
            *(f"param/{i}" for i in range(count)),
            *(f"optim/{i}" for i in range(len(header["optimizer"]["arrays"]))),
        }
        if header["best_params"]:
            expected.update(f"best/{i}" for i in range(count))
        missing, unknown = expected - set(stored.members), set(stored.members) - expected
        if missing or unknown:
            parts = [f"{label} {some(keys)}" for label, keys in (("missing", missing), ("unknown", unknown)) if keys]
            raise self.fail(f"the arrays are not those its header names: {', '.join(parts)}")

    # ----------------------------------------------------------------- this run

    def check_run(self, settings: dict[str, Any]) -> None:
        """Refuses a checkpoint of another run: other data, batch size, seed, model."""
        for key, value in settings.items():
            saved = self.settings.get(key)
            if saved != value:
                raise self.fail(
                    f"written by a fit with {key}={short(saved)}, this fit has {key}={short(value)}: resume the same run, "
                    "or give another checkpoint folder"
                )

    def restore(self, model: Any, optimizer: Any, schedule: Any, rng: np.random.Generator, rank: int, size: int) -> None:
        """The model's parameters, the optimizer's state and rate, the schedule's epoch,
        fit's generator ``rng`` and this rank's layer generators as they were; the best
        epoch's parameters in ``best_params``. Everything is checked and read first:
        nothing is changed when it refuses."""
        header, saved = self.header, self.header["optimizer"]
        if saved["type"] != type(optimizer).__name__:
            raise self.fail(f"written with optimizer {saved['type']}, this fit uses {type(optimizer).__name__}")
        layer_states = header["layer_states"]
        if len(layer_states) != size and draws_in_training(model):
            raise self.fail(
                f"written by {len(layer_states)} rank(s), each drawing its own dropout masks; resume with "
                f"{len(layer_states)} rank(s) (or start a new checkpoint folder)"
            )
        names = list(model.params)
        if header["params"] != names:
            raise self.fail(f"expected the parameters {some(names, 6)}, got {some(header['params'], 6)}")
        wanted = {f"param/{i}": model.params[name] for i, name in enumerate(names)}
        if header["best_params"]:
            wanted.update({f"best/{i}": model.params[name] for i, name in enumerate(names)})
        layouts = {key: (like.dtype, like.shape) for key, like in wanted.items()}
        layouts.update(self._optimizer_layouts(optimizer))
        for key, (dtype, shape) in layouts.items():
            declared = self.declared[key]
            if shape is None:  # an optimizer of unknown layout: any shape of a number dtype
                if declared.dtype.kind not in "biuf":
                    raise self.fail(f"expected {key} as numbers, got {declared.text()}")
                continue
            if declared.dtype != dtype or tuple(declared.shape) != shape:
                what = f"{key} ({names[int(key.split('/')[1])]})" if not key.startswith("optim/") else key
                raise self.fail(f"expected {what} as {dtype} {short(shape)}, got {declared.text()}")
        generators = self._checked_generators(model, rng, layer_states[rank] if rank < len(layer_states) else layer_states[0])
        arrays = {}
        with self._archive() as stored:
            for key in layouts:
                declared = self.declared[key]
                arrays[key] = np.empty(tuple(declared.shape), declared.dtype)
                stored.read_into(key, arrays[key])
        # --- nothing has changed so far; from here on nothing can fail
        for i, name in enumerate(names):
            model.params[name] = arrays[f"param/{i}"]
        if header["best_params"]:
            self.best_params = {name: arrays[f"best/{i}"] for i, name in enumerate(names)}
        state: dict[str, Any] = {name: dict(values) for name, values in saved["scalars"].items()}
        for index, (name, key) in enumerate(saved["arrays"]):
            if key is None:
                state[name] = arrays[f"optim/{index}"]
            else:
                state.setdefault(name, {})[key] = arrays[f"optim/{index}"]
        optimizer.state = state
        if isinstance(schedule, _Schedule):
            schedule.epoch = header["epochs_done"]
        elif schedule is not None:
            # a schedule of another kind: replayed (epochs_done is bounded, by its History too)
            for _ in range(header["epochs_done"]):
                schedule.step()
        optimizer.lr = saved["lr"]
        for generator, value in generators:
            generator.bit_generator.state = value

    def _optimizer_layouts(self, optimizer: Any) -> dict[str, tuple[Any, Any]]:
        """{optim/i: (dtype, shape)} of the optimizer's arrays, and its state's structure
        checked, for the optimizers lstmcore knows (SGD, Adam, AdamW); for another kind,
        shape None: the arrays of parameters it holds, of any shape."""
        saved = self.header["optimizer"]
        params = optimizer.params
        for name in [*(name for name, _ in saved["arrays"]), *saved["scalars"]]:
            if name not in params:
                raise self.fail(f"the optimizer's state names {short(name)}, not among its parameters {some(params)}")
        keys: tuple[str | None, ...]
        scalar_keys: tuple[str, ...]
        if isinstance(optimizer, Adam):
            keys, scalar_keys = ("m", "v"), ("step",)
        elif isinstance(optimizer, SGD):
            keys, scalar_keys = (None,), ()
        else:
            return {f"optim/{i}": (None, None) for i in range(len(saved["arrays"]))}
        layouts: dict[str, tuple[Any, Any]] = {}
        held: dict[str, set[Any]] = {}
        for index, (name, key) in enumerate(saved["arrays"]):
            if key not in keys:
                raise self.fail(f"expected {type(optimizer).__name__}'s state arrays as {list(keys)}, got {short(key)}")
            layouts[f"optim/{index}"] = (params[name].dtype, params[name].shape)
            held.setdefault(name, set()).add(key)
        for name, values in saved["scalars"].items():
            steps = [values.get(key) for key in scalar_keys]
            if set(values) != set(scalar_keys) or not all(_is_int(step) and step >= 0 for step in steps):
                raise self.fail(
                    f"expected {type(optimizer).__name__}'s scalar state of {short(name)} as integers {list(scalar_keys)}, "
                    f"got {short(values)}"
                )
        for name in set(held) | set(saved["scalars"]):
            if held.get(name, set()) != set(keys) or (scalar_keys and name not in saved["scalars"]):
                raise self.fail(f"the optimizer's state of {short(name)} is incomplete")
        return layouts

    def _checked_generators(self, model: Any, rng: np.random.Generator, states: dict[str, Any]) -> list[tuple[Any, Any]]:
        """[(generator, state)] of fit's generator and the layers', each state tried on a
        scratch generator of the same kind first."""
        found = _generators(model)
        if set(states) != set(found):
            raise self.fail(f"expected the layers' generator states {some(found)}, got {some(states)}")
        pairs = [(rng, self.header["rng"], "rng")]
        pairs += [
            (getattr(layer, attribute), states[key], f"layer_states {key}") for key, (layer, attribute) in found.items()
        ]
        for generator, value, what in pairs:
            scratch = type(generator.bit_generator)()
            try:
                scratch.state = value
            except (*UNREADABLE, TypeError, KeyError) as error:
                raise self.fail(f"{what} is not a {type(scratch).__name__} state ({short(str(error))})") from error
        return [(generator, value) for generator, value, _ in pairs]
