"""The ``lstmcore`` command line: the parser and ``main``; each task's arguments and work are
in its module under ``lstmcore.cli.tasks``.

    lstmcore demo [--plot out.png]
    lstmcore demo memory [--steps T] [--plot out.png]
    lstmcore train forecast|charlm|classify [options]
    lstmcore generate MODEL [--length --temperature --prime --seed]
    lstmcore predict MODEL [--csv FILE --column NAME | --text TEXT ...]
    lstmcore predict MODEL --input PATTERN --output DIR [--dask ADDRESS] [--batch-size N]
    lstmcore inspect MODEL DATA [--plot-dir DIR] [--ablate] [--json PATH]
    lstmcore convert IN OUT [--lengths --softmax --opset N]   (.npz .safetensors .onnx; .keras in)
    lstmcore quantize MODEL OUT --to int8|bfloat16

Exit codes: 0 done; 2 bad arguments (argparse's usage and one error line) or a bad file,
value, model file or output path (one line on stderr, ``lstmcore: error: ...``, saying
what to fix; no traceback); 130 interrupted. Sizes have upper limits (``_limits``), and
output paths are checked before training starts.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import lstmcore
from lstmcore.cli import _convert, _dask_predict, _demo, _inspect, _quantize
from lstmcore.cli._arguments import nonempty_path, whole_number
from lstmcore.cli._errors import TaskError
from lstmcore.cli._model_files import load_model
from lstmcore.cli.tasks import TASKS
from lstmcore.nn._mpi import RankFailed

PROG = "lstmcore"


def _run_predict(args):
    if _dask_predict.wanted(args):
        return _dask_predict.run(args)
    checks = {name: task.check_metadata for name, task in TASKS.items() if task.predict is not None}
    model = load_model(args.model, checks)
    return TASKS[model.metadata["task"]].predict(model, args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train and run LSTM models on CPUs: forecasting, character models, text classification.",
        epilog="Start with `lstmcore demo`. Each command has --help.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {lstmcore.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _demo.add_parser(commands)
    train = commands.add_parser("train", help="train a model for a task and save it", description="Train a model.")
    train_tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for task in TASKS.values():
        task.add_parsers(train_tasks, commands)

    predict = commands.add_parser(
        "predict",
        help="run a forecast or classify model on new data",
        description="forecast model: print the values after the end of --csv FILE --column NAME. "
        "classify model: print the label, its probability and the text for each --text or CSV row.",
    )
    predict.add_argument("model", metavar="MODEL", help="model file (.npz or .safetensors)")
    predict.add_argument("--csv", metavar="FILE", help="CSV file with a header row")
    predict.add_argument("--column", help="column of --csv (default: the model's column, or 'text')")
    predict.add_argument("--text", action="append", help="a text to classify (repeatable)")
    _dask_predict.add_options(predict, whole_number("batch_size"), nonempty_path)
    predict.set_defaults(run=_run_predict)

    _inspect.add_parser(commands)
    _convert.add_parser(commands)
    _quantize.add_parser(commands)
    return parser


def main(argv=None):
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or argparse's usage error (2)
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 2
    try:
        # NumPy's overflow warnings would bury the one error line; the tasks check their
        # results (a diverged training, an overflowing series) and say so themselves.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return args.run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        _error(f"{where}{error.strerror or error}")
    except MemoryError:
        _error("out of memory; when training, lower --hidden, --layers, --batch-size or the sequence length")
    # ModelFileError by name: it is a ValueError today, and must stay one line if it changes
    except (TaskError, lstmcore.ModelFileError, ValueError, TypeError, RankFailed) as error:
        _error(str(error))
    return 2


def _error(message):
    """One line on stderr, as argparse's parser.error writes it (without the usage)."""
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
