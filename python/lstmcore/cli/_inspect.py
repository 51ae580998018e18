"""``lstmcore inspect MODEL DATA``: the gate microscope on a model file and its kind of data.

DATA is prepared as the model was trained (the model's ``metadata`` names the task):
forecast: a CSV file, the model's column (or --column) cut into its windows, relative and
scaled; charlm: a UTF-8 text cut into sequences of the model's length; classify: a CSV
file's --text-column tokenised and padded as in training (--label-column for the loss of
--ablate). A model without a task reads DATA as a .npy array of its inputs (no --ablate).
The model runs up to its first LSTM / GRU / RNN, whose gate traces are summarised
(``lstmcore.microscope``); --ablate runs the whole model again with each gate of that LSTM
clamped and prints the change of the model's loss on DATA.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

import lstmcore
from lstmcore import microscope
from lstmcore.cli import _arguments as arguments
from lstmcore.cli._errors import TaskError
from lstmcore.cli._files import check_output_folder, check_output_paths
from lstmcore.cli._model_files import read_model
from lstmcore.cli.tasks import METADATA_CHECKS, TASKS
from lstmcore.inference import PreparedModel
from lstmcore.nn._train import evaluate
from lstmcore.rnn._lstm import GATE_NAMES
from lstmcore.rnn._recurrent import _GatedRecurrent


def add_parser(commands):
    """Register ``inspect`` on the command line's subparsers."""
    parser = commands.add_parser(
        "inspect",
        help="gate statistics (and ablations) of a model's first LSTM / GRU / RNN on data",
        description="Run a model file on DATA prepared as in training (forecast: a CSV file; charlm: a text "
        "file; classify: a CSV file of texts; a model without a task: a .npy array of inputs) up to its first "
        "LSTM / GRU / RNN and print its gate statistics: histograms, saturation, dead and always-open units, the "
        "forget (update) gate over time. --ablate clamps each gate of that LSTM in turn and prints the "
        "change of the model's loss on DATA.",
    )
    parser.add_argument("model", metavar="MODEL", help="model file (.npz or .safetensors)")
    parser.add_argument("data", metavar="DATA", help="data file, as described above")
    parser.add_argument(
        "--plot-dir", type=arguments.nonempty_path, metavar="DIR", help="write PNG plots here (needs matplotlib)"
    )
    parser.add_argument("--ablate", action="store_true", help="report the loss with each LSTM gate clamped")
    parser.add_argument(
        "--mean-ablation",
        action="store_true",
        help="with --ablate: clamp each unit at its mean activation on DATA instead of the fixed values "
        "(forget 1, input 0, output 1, candidate 0)",
    )
    parser.add_argument(
        "--json", type=arguments.nonempty_path, metavar="PATH", help="write the summary (and ablation) as JSON"
    )
    parser.add_argument("--column", help="forecast: the CSV column (default: the model's)")
    parser.add_argument("--text-column", default="text", help="classify: default %(default)s")
    parser.add_argument("--label-column", default="label", help="classify, --ablate: default %(default)s")
    parser.add_argument(
        "--max-samples",
        type=arguments.whole_number("max_samples"),
        default=512,
        help="samples used, evenly spread over DATA; 0 for all (default %(default)s)",
    )
    parser.set_defaults(run=run)
    return parser


# ----------------------------------------------------------------------------- the model


def first_recurrent(model):
    """Index in ``model.layers`` of the first LSTM, GRU or RNN, or a TaskError."""
    if isinstance(model, PreparedModel):
        raise TaskError(
            f"a model quantized to {model.precision} keeps no gate traces: inspect the float32 model it came from"
        )
    for index, layer in enumerate(model.layers):
        if isinstance(layer, _GatedRecurrent):
            return index
    raise TaskError("the model has no LSTM, GRU or RNN layer: nothing to inspect")


def gate_traces(model, x, lengths, index):
    """The gate traces of ``model.layers[index]`` on model inputs ``x`` (earlier layers run in
    inference mode)."""
    for layer in model.layers[:index]:
        x = layer.forward(x, training=False, lengths=lengths)[0]
    options = {} if lengths is None else {"lengths": lengths}
    _, _, traces = model.layers[index](x, return_gates=True, **options)
    return traces


def forward_with_ablation(model, x, lengths, index, ablate):
    """The model's output with ``ablate`` passed to its recurrent layer ``index`` (inference)."""
    for position, layer in enumerate(model.layers):
        if isinstance(layer, _GatedRecurrent):
            options = {} if lengths is None else {"lengths": lengths}
            if position == index and ablate is not None:
                options["ablate"] = ablate
            x = layer(x, **options)[0]
        else:
            x = layer.forward(x, training=False, lengths=lengths)[0]
    return x


class _Ablated:
    """The model as ``evaluate`` reads it, with ``ablate`` on its recurrent layer ``index``."""

    def __init__(self, model, index, ablate):
        self.model, self.index, self.ablate = model, index, ablate
        self.output_is_sequence = model.output_is_sequence

    def __call__(self, x, lengths=None):
        return forward_with_ablation(self.model, x, lengths, self.index, self.ablate)

    def lengths_of(self, x):
        return self.model.lengths_of(x)


def model_loss(model, x, y, lengths, loss, index, ablate):
    """The mean loss of the model on (x, y) with ``ablate`` on layer ``index`` (``evaluate``:
    padding steps of per-step outputs excluded, exact across batches)."""
    return evaluate(_Ablated(model, index, ablate), x, y, loss=loss, lengths=lengths)["loss"]


# ----------------------------------------------------------------------------- the data


def prepare(model, path, *, column=None, text_column="text", label_column="label", targets=True):
    """``(x, y, lengths, loss, description)``: DATA as the model's inputs, as in training.

    y is None when ``targets`` is False and the data need no reading for them (classify
    labels); loss is the training loss's name (None without a task).
    """
    task = TASKS.get(model.metadata.get("task"))
    if task is not None:
        options = SimpleNamespace(column=column, text_column=text_column, label_column=label_column)
        return task.inspection_data(model, path, options, targets)
    if str(path).endswith(".npy"):
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as error:
            raise TaskError(f"{path}: not a NumPy array file ({error or 'empty'})") from None
        if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
            raise TaskError(f"{path}: expected model inputs (B, T, ...), got shape {np.shape(x)}")
        if x.dtype.kind in "fc" and not np.isfinite(x).all():
            raise TaskError(f"{path}: expected finite model inputs, got NaN or infinity")
        return x, None, None, None, f"{len(x)} samples of {path}"
    task = model.metadata.get("task")
    made_by = f"a {task!r} model" if task else "a model without a task"
    raise TaskError(f"the model is {made_by}: DATA must be a .npy array of its inputs")


def spread(count, limit):
    """Indices of at most ``limit`` (0: all) items evenly spread over ``count``."""
    if not limit or count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


# ----------------------------------------------------------------------------- the command


def run(args, echo=print):
    check_output_paths(args.json)
    check_output_folder(args.plot_dir)
    model = read_model(args.model, METADATA_CHECKS)
    index = first_recurrent(model)
    layer = model.layers[index]
    if args.ablate and not isinstance(layer, lstmcore.LSTM):
        raise TaskError(
            f"--ablate clamps LSTM gates; the model's first recurrent layer is a {type(layer).__name__}, "
            "which takes no ablation"
        )
    x, y, lengths, loss, description = prepare(
        model,
        args.data,
        column=args.column,
        text_column=args.text_column,
        label_column=args.label_column,
        targets=args.ablate,
    )
    if args.ablate and (y is None or loss is None):
        raise TaskError("--ablate needs targets and a loss: a model made by lstmcore train TASK")
    chosen = spread(len(x), args.max_samples)
    x = x[chosen]
    y = None if y is None else y[chosen]
    if lengths is not None:
        lengths = lengths[chosen]
        x = x[:, : int(lengths.max())]  # no step where every chosen sequence is padding
    echo(f"inspect: layer {index} of {args.model}, {layer!r}, on {len(chosen)} of the {description} from {args.data}")
    traces = gate_traces(model, x, lengths, index)
    names = microscope.direction_names(layer.num_layers, layer.bidirectional)
    summary = microscope.summarize(traces, lengths, names=names)
    del traces
    echo(microscope.format_summary(summary))
    if args.plot_dir:
        try:
            paths = microscope.plot(summary, args.plot_dir)
        except ImportError as error:
            echo(f"note: {error}; no plots written")
        else:
            echo(f"wrote {len(paths)} plots to {args.plot_dir}")
    rows = None
    if args.ablate:
        gates = [gate for gate in GATE_NAMES if not (gate == "forget" and layer.coupled)]
        values = microscope.mean_values(summary, gates) if args.mean_ablation else None
        rows = microscope.ablation_report(
            lambda ablate: model_loss(model, x, y, lengths, loss, index, ablate), gates=gates, values=values
        )
        echo("")
        echo(f"ablation: the model's {loss} loss with each gate of layer {index} clamped")
        echo(microscope.format_ablation(rows))
    if args.json:
        document = dict(summary, layer=index, model=str(args.model), data=str(args.data))
        if rows is not None:
            document["ablation"] = rows
        try:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=1, allow_nan=False)
        except OSError as error:
            raise TaskError(f"cannot write {args.json}: {error.strerror or error}") from None
        echo(f"wrote the summary to {args.json}")
    return 0
