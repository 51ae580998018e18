"""The command line's argument types and the options every ``train`` task shares.

A type refuses a bad value with argparse's one-line usage error, naming the expected and
the given; sizes are bounded by ``_limits.BOUNDS`` before anything is allocated.
"""

from __future__ import annotations

import argparse
from inspect import signature

from lstmcore.cli import _distributed
from lstmcore.cli._limits import BOUNDS, TEMPERATURE


def whole_number(name):
    """The argument type of the size ``name``: a whole number within ``BOUNDS[name]``."""
    low, high = BOUNDS[name]

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"expected a number <= {high:,}, got {value:,}")
        return value

    return parse


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def sampling_temperature(text):
    value = positive_float(text)
    low, high = TEMPERATURE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high:g}], got {text}")
    return value


def nonempty_path(text):
    """A file or folder name; an empty one (``--out ""``) is a mistake, not "none"."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {text}")
    return value


def training_options(parser, defaults, *, out):
    group = parser.add_argument_group("training")
    group.add_argument(
        "--cell",
        choices=("lstm", "gru", "rnn"),
        default="lstm",
        help="the recurrent layer: LSTM, GRU or the vanilla RNN (tanh) (default %(default)s)",
    )
    group.add_argument(
        "--hidden", type=whole_number("hidden"), default=defaults["hidden"], help="hidden units (default %(default)s)"
    )
    group.add_argument(
        "--layers",
        type=whole_number("layers"),
        default=defaults["layers"],
        help="stacked recurrent layers (default %(default)s)",
    )
    group.add_argument(
        "--epochs", type=whole_number("epochs"), default=defaults["epochs"], help="passes over the data (default %(default)s)"
    )
    group.add_argument(
        "--batch-size", type=whole_number("batch_size"), default=defaults["batch_size"], help="default %(default)s"
    )
    group.add_argument("--lr", type=positive_float, default=defaults["lr"], help="Adam learning rate (default %(default)s)")
    group.add_argument(
        "--validation",
        type=fraction,
        default=defaults["validation"],
        help="fraction held out for validation (default %(default)s)",
    )
    group.add_argument(
        "--seed",
        type=whole_number("seed"),
        default=defaults["seed"],
        help="seeds weights and shuffling: same seed, same losses",
    )
    group.add_argument(
        "--out",
        type=nonempty_path,
        default=out,
        metavar="FILE",
        help="where to save the model: .npz, or safetensors for a name ending .safetensors (default %(default)s)",
    )
    group.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    _distributed.add_options(group, nonempty_path)


def train_runner(train):
    """The runner of a ``train`` task: the parsed options the function takes, by name."""

    def run(args):
        accepted = signature(train).parameters
        given = {name: value for name, value in vars(args).items() if name in accepted}
        with _distributed.one_job(args) as ranks:  # with --distributed, a failure on one rank ends the job
            train(**{**given, **_distributed.task_keywords(args, accepted, ranks)})
        return 0

    return run


def defaults(function):
    """The keyword defaults of a function: the command line offers the Python API's."""
    return {name: p.default for name, p in signature(function).parameters.items()}
