"""The ``lstmcore`` command line: argparse only; the work is in ``lstmcore._commands``.

    lstmcore demo [--plot out.png]
    lstmcore train forecast|charlm|classify [options]
    lstmcore generate MODEL [--length --temperature --prime --seed]
    lstmcore predict MODEL [--csv FILE --column NAME | --text TEXT ...]
    lstmcore inspect MODEL DATA [--plot-dir DIR] [--ablate] [--json PATH]

Exit codes: 0 done; 2 bad arguments (argparse's usage and one error line) or a bad file,
value, model file or output path (one line on stderr, ``lstmcore: error: ...``, saying
what to fix; no traceback); 130 interrupted. Sizes have upper limits (``_limits``), and
output paths are checked before training starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from inspect import signature

import numpy as np

import lstmcore
from lstmcore._limits import BOUNDS, TEMPERATURE
from lstmcore._tasks import TaskError

PROG = "lstmcore"


# ----------------------------------------------------------------------------- argument types


def _whole_number(name):
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


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _temperature(text):
    value = _positive_float(text)
    low, high = TEMPERATURE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high:g}], got {text}")
    return value


def _path(text):
    """A file or folder name; an empty one (``--out ""``) is a mistake, not "none"."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {text}")
    return value


# ----------------------------------------------------------------------------- commands


def _run_train(train):
    """The runner of a ``train`` task: the parsed options the function takes, by name."""

    def run(args):
        accepted = signature(train).parameters
        train(**{name: value for name, value in vars(args).items() if name in accepted}, verbose=not args.quiet)
        return 0

    return run


def _defaults(function):
    """The keyword defaults of a function: the command line offers the Python API's."""
    return {name: p.default for name, p in signature(function).parameters.items()}


def _run_generate(args):
    from lstmcore._commands import generate, load_model

    model = load_model(args.model, "charlm")
    print(generate(model, length=args.length, temperature=args.temperature, prime=args.prime, seed=args.seed))
    return 0


def _run_predict(args):
    from lstmcore import _tasks
    from lstmcore._commands import classify_texts, forecast_next, load_model

    model = load_model(args.model, ("forecast", "classify"))
    if model.metadata["task"] == "forecast":
        if args.text:
            raise TaskError("--text is for classify models; a forecast model reads --csv FILE --column NAME")
        if args.csv is None:
            raise TaskError("a forecast model needs the series: --csv FILE --column NAME")
        column = args.column or model.metadata.get("column", "")
        values = forecast_next(model, _tasks.read_series(args.csv, column))
        for step, value in enumerate(values, 1):
            print(f"t+{step}\t{value:.6g}")
        return 0
    if args.text:
        texts = list(args.text)
    elif args.csv is not None:
        (texts,) = _tasks.read_csv_columns(args.csv, [args.column or "text"])
        if not texts:
            raise TaskError(f"{args.csv}: no rows to classify")
    else:
        raise TaskError("a classify model needs texts: --text TEXT (repeatable) or --csv FILE --column NAME")
    names, probabilities = classify_texts(model, texts)
    for text, name, row in zip(texts, names, probabilities):
        print(f"{name}\t{row.max():.3f}\t{text}")
    return 0


def _run_demo(args):
    from lstmcore._commands import generate, train_charlm, train_forecast

    started = time.perf_counter()
    print("== 1. Forecast monthly CO2 at Mauna Loa (LSTM on 24-month windows) ==")
    forecast = train_forecast(seed=args.seed, plot=args.plot, verbose=False)
    print(f"   ({time.perf_counter() - started:.1f} s)")
    print()
    print("== 2. A character model of Alice's Adventures in Wonderland (a few epochs) ==")
    lm_started = time.perf_counter()
    charlm = train_charlm(epochs=args.charlm_epochs, seed=args.seed, verbose=not args.quiet)
    print(f"   ({time.perf_counter() - lm_started:.1f} s)")
    print()
    print("A sample (temperature 0.8, primed with 'Alice '):")
    print(generate(charlm["model"], length=300, temperature=0.8, prime="Alice ", seed=args.seed))
    print()
    print(
        f"demo done in {time.perf_counter() - started:.1f} s: forecast RMSE {forecast['val_rmse']:.3f} ppm "
        f"vs naive {forecast['naive_rmse']:.3f} ppm; character model {charlm['val_bpc']:.2f} bits/char "
        f"vs unigram {charlm['unigram_bpc']:.2f}"
    )
    return 0


# ----------------------------------------------------------------------------- the parser


def _training_options(parser, defaults, *, out):
    group = parser.add_argument_group("training")
    group.add_argument(
        "--hidden", type=_whole_number("hidden"), default=defaults["hidden"], help="LSTM hidden units (default %(default)s)"
    )
    group.add_argument(
        "--layers", type=_whole_number("layers"), default=defaults["layers"], help="stacked LSTM layers (default %(default)s)"
    )
    group.add_argument(
        "--epochs", type=_whole_number("epochs"), default=defaults["epochs"], help="passes over the data (default %(default)s)"
    )
    group.add_argument("--batch-size", type=_whole_number("batch_size"), default=defaults["batch_size"], help="default %(default)s")
    group.add_argument(
        "--lr", type=_positive_float, default=defaults["lr"], help="Adam learning rate (default %(default)s)"
    )
    group.add_argument(
        "--validation", type=_fraction, default=defaults["validation"],
        help="fraction held out for validation (default %(default)s)",
    )
    group.add_argument(
        "--seed", type=_whole_number("seed"), default=defaults["seed"], help="seeds weights and shuffling: same seed, same losses"
    )
    group.add_argument("--out", type=_path, default=out, metavar="FILE", help="where to save the model (default %(default)s)")
    group.add_argument("--quiet", action="store_true", help="no per-epoch progress")


def build_parser():
    from lstmcore import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train and run LSTM models on CPUs: forecasting, character models, text classification.",
        epilog="Start with `lstmcore demo`. Each command has --help.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="train a CO2 forecaster and a character model on the shipped data",
        description="Train an LSTM forecaster on the shipped Mauna Loa CO2 series and print its validation "
        "RMSE next to the naive last-value forecast; then train a character model on Alice's Adventures "
        "in Wonderland for a few epochs and print a sample. About a minute on 2 cores.",
    )
    demo.add_argument("--plot", type=_path, metavar="PNG", help="write forecast vs actual to this PNG (needs matplotlib)")
    demo.add_argument("--seed", type=_whole_number("seed"), default=0, help="default %(default)s")
    demo.add_argument("--charlm-epochs", type=_whole_number("charlm_epochs"), default=5, help="default %(default)s")
    demo.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    demo.set_defaults(run=_run_demo)

    train = commands.add_parser("train", help="train a model for a task and save it", description="Train a model.")
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)

    from lstmcore._commands import train_charlm, train_classify, train_forecast

    defaults = _defaults(train_forecast)
    forecast = tasks.add_parser(
        "forecast", help="forecast a numeric CSV column (default: shipped monthly CO2)",
        description="Train LSTM -> LastStep -> Dense on windows of a series to forecast the next values. Inputs "
        "and targets are relative to each window's last value and scaled; the latest windows (in time order) "
        "are held out, and their RMSE is printed next to the naive last-value forecast.",
    )
    forecast.add_argument("--csv", metavar="FILE", help="CSV file with a header row (default: shipped CO2 series)")
    forecast.add_argument("--column", default=defaults["column"], help="numeric column to forecast (default %(default)s)")
    forecast.add_argument("--window", type=_whole_number("window"), default=defaults["window"], help="past values per input (default %(default)s)")
    forecast.add_argument("--horizon", type=_whole_number("horizon"), default=defaults["horizon"], help="steps predicted ahead (default %(default)s)")
    forecast.add_argument(
        "--season", type=_whole_number("season"), default=defaults["season"],
        help="season length for the seasonal-naive baseline, 0 for none (default %(default)s)",
    )
    forecast.add_argument("--plot", type=_path, metavar="PNG", help="write forecast vs actual to this PNG (needs matplotlib)")
    _training_options(forecast, defaults, out="forecast.npz")
    forecast.set_defaults(run=_run_train(train_forecast))

    defaults = _defaults(train_charlm)
    charlm = tasks.add_parser(
        "charlm", help="a character-level language model (default: shipped Alice in Wonderland)",
        description="Train Embedding -> LSTM -> Dense to predict each next character of a text; the end of "
        "the text is held out and its bits per character printed next to a unigram baseline.",
    )
    charlm.add_argument("--text", metavar="FILE", help="UTF-8 text file (default: the shipped text)")
    charlm.add_argument(
        "--steps", type=_whole_number("steps"), default=defaults["steps"], help="characters per training sequence (default %(default)s)"
    )
    charlm.add_argument("--embedding", type=_whole_number("embedding"), default=defaults["embedding"], help="embedding size (default %(default)s)")
    _training_options(charlm, defaults, out="charlm.npz")
    charlm.set_defaults(run=_run_train(train_charlm))

    defaults = _defaults(train_classify)
    classify = tasks.add_parser(
        "classify", help="classify texts from a CSV (default: shipped sentences by author)",
        description="Train Embedding -> LSTM -> LastStep -> Dense on texts and labels from a CSV file; a random "
        "fraction is held out and its accuracy printed next to the majority-class baseline.",
    )
    classify.add_argument("--csv", metavar="FILE", help="CSV file with a header row (default: the shipped sentences)")
    classify.add_argument("--text-column", default=defaults["text_column"], help="default %(default)s")
    classify.add_argument("--label-column", default=defaults["label_column"], help="default %(default)s")
    classify.add_argument("--tokens", choices=("word", "char"), default=defaults["tokens"], help="default %(default)s")
    classify.add_argument(
        "--vocabulary-size", type=_whole_number("vocabulary_size"), default=defaults["vocabulary_size"], help="most frequent tokens kept (default %(default)s)"
    )
    classify.add_argument("--max-steps", type=_whole_number("max_steps"), default=defaults["max_steps"], help="tokens kept per text (default %(default)s)")
    classify.add_argument("--embedding", type=_whole_number("embedding"), default=defaults["embedding"], help="embedding size (default %(default)s)")
    _training_options(classify, defaults, out="classify.npz")
    classify.set_defaults(run=_run_train(train_classify))

    generate = commands.add_parser(
        "generate", help="sample text from a charlm model",
        description="Sample text from a model made by `lstmcore train charlm`, one character at a time.",
    )
    generate.add_argument("model", metavar="MODEL", help="model file (.npz)")
    generate.add_argument(
        "--length", type=_whole_number("length"), default=300, help="characters to sample (default %(default)s)"
    )
    generate.add_argument(
        "--temperature", type=_temperature, default=0.8,
        help="below 1: safer, above 1: wilder (default %(default)s)",
    )
    generate.add_argument("--prime", default="The ", help="text to start from (default %(default)r)")
    generate.add_argument("--seed", type=_whole_number("seed"), default=None, help="sampling seed (default: random)")
    generate.set_defaults(run=_run_generate)

    predict = commands.add_parser(
        "predict", help="run a forecast or classify model on new data",
        description="forecast model: print the values after the end of --csv FILE --column NAME. "
        "classify model: print the label, its probability and the text for each --text or CSV row.",
    )
    predict.add_argument("model", metavar="MODEL", help="model file (.npz)")
    predict.add_argument("--csv", metavar="FILE", help="CSV file with a header row")
    predict.add_argument("--column", help="column of --csv (default: the model's column, or 'text')")
    predict.add_argument("--text", action="append", help="a text to classify (repeatable)")
    predict.set_defaults(run=_run_predict)

    from lstmcore._inspect_cli import add_parser as add_inspect_parser

    add_inspect_parser(commands)
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
    except (TaskError, lstmcore.ModelFileError, ValueError, TypeError) as error:
        _error(str(error))
    return 2


def _error(message):
    """One line on stderr, as argparse's parser.error writes it (without the usage)."""
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
