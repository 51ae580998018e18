"""``lstmcore quantize MODEL OUT --to int8|bfloat16``: a float32 model file's recurrent
layers quantized (``lstmcore.quantize``) and written as a model file that ``lstmcore
predict``, ``generate`` and ``lstmcore.load`` read back quantized."""

from __future__ import annotations

import os

import lstmcore
from lstmcore.cli import _arguments as arguments
from lstmcore.cli._errors import TaskError
from lstmcore.cli._files import check_output_paths
from lstmcore.cli._model_files import read_model
from lstmcore.cli._training import check_model_output
from lstmcore.inference import PreparedModel


def add_parser(commands):
    parser = commands.add_parser(
        "quantize",
        help="write a model with its LSTM/GRU/RNN weights in int8 or bfloat16",
        description="Read a float32 model file (.npz or .safetensors) and write OUT with its recurrent layers' weight "
        "matrices in int8 (a scale per row; activations quantized per row at each step) or bfloat16, for faster "
        "inference with a small loss of accuracy (docs/inference.md). predict, generate and lstmcore.load read it.",
    )
    parser.add_argument("source", metavar="MODEL", help="the float32 model file")
    parser.add_argument("target", metavar="OUT", type=arguments.nonempty_path, help="the file to write")
    parser.add_argument("--to", choices=("int8", "bfloat16"), required=True, help="the precision of the weights")
    parser.set_defaults(run=run)
    return parser


def run(args, echo=print):
    check_output_paths(args.target)
    check_model_output(args.target)
    model = read_model(args.source, {})
    if isinstance(model, PreparedModel):
        raise TaskError(f"{args.source} is already quantized to {model.precision}: quantize the float32 model it came from")
    try:
        quantized = lstmcore.quantize(model, args.to)
        quantized.save(args.target)
    except ImportError as error:
        raise TaskError(f"cannot write {args.target}: {error}") from None
    except (ValueError, TypeError) as error:
        raise TaskError(f"cannot quantize {args.source}: {error}") from None
    matrices = sum(len(layer.reduced_params) for layer in quantized.layers if hasattr(layer, "reduced_params"))
    before, after = os.path.getsize(args.source), os.path.getsize(args.target)
    echo(
        f"wrote {args.target}: {matrices} weight matrices in {args.to}, "
        f"{_size(after)} (the float32 file: {_size(before)}, {before / max(after, 1):.1f}x)"
    )
    return 0


def _size(count):
    return f"{count / 1e6:.2f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"
