"""``lstmcore convert IN OUT``: a model from one file format to another, chosen by suffix
(.npz and .safetensors: lstmcore's model files; .onnx; .keras, read only), with a summary
of the layers it mapped."""

from __future__ import annotations

import os

import lstmcore
from lstmcore.cli import _arguments as arguments
from lstmcore.cli._errors import TaskError
from lstmcore.cli._files import check_output_paths
from lstmcore.cli._model_files import read_model
from lstmcore.cli._training import check_model_output
from lstmcore.inference import PreparedModel

READS = (".npz", ".safetensors", ".onnx", ".keras")
WRITES = (".npz", ".safetensors", ".onnx")


def add_parser(commands):
    parser = commands.add_parser(
        "convert",
        help="convert a model between .npz, .safetensors, .onnx and .keras files",
        description="Read a model (.npz or .safetensors: lstmcore model files; .onnx: a graph whose nodes form "
        "one chain of lstmcore layers; .keras: a Keras 3 file) and write it as OUT's suffix says (.npz, "
        ".safetensors or .onnx), printing the layers it mapped.",
    )
    parser.add_argument("source", metavar="IN", help="the model to read")
    parser.add_argument("target", metavar="OUT", type=arguments.nonempty_path, help="the file to write")
    onnx = parser.add_argument_group("writing .onnx")
    onnx.add_argument("--lengths", action="store_true", help="give the graph a second input, lengths (batch,) int64")
    onnx.add_argument("--softmax", action="store_true", help="end the graph with a softmax (a classifier's probabilities)")
    onnx.add_argument("--opset", type=arguments.whole_number("opset"), default=17, help="default %(default)s")
    parser.set_defaults(run=run)
    return parser


def _suffix(path, known, role):
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in known:
        raise TaskError(f"cannot {role} {path}: expected a name ending {', '.join(known)}, got {suffix or 'no suffix'}")
    return suffix


def read_any(path):
    """The lstmcore Sequential that the file at ``path`` holds, or a TaskError."""
    suffix = _suffix(path, READS, "read")
    if suffix in (".npz", ".safetensors"):
        return read_model(path, {})
    if not os.path.isfile(path):
        raise TaskError(f"no such model file: {path}")
    try:
        if suffix == ".onnx":
            return lstmcore.onnx.load(path).to_sequential()
        return lstmcore.from_keras(path)
    except ImportError as error:
        raise TaskError(f"cannot read {path}: {error}") from None
    except lstmcore.ModelFileError as error:  # names the file
        raise TaskError(str(error)) from None
    except (ValueError, TypeError) as error:  # from_keras's refusals name the layer and option
        raise TaskError(f"{path}: {error}") from None


def run(args, echo=print):
    target_suffix = _suffix(args.target, WRITES, "write")
    check_output_paths(args.target)
    check_model_output(args.target)
    model = read_any(args.source)
    echo(f"{args.source}: {len(model.layers)} layer(s)")
    for index, layer in enumerate(model.layers):
        echo(f"  ({index}) {layer!r}")
    if target_suffix == ".onnx" and isinstance(model, PreparedModel):
        raise TaskError(f"{args.source} is quantized to {model.precision}, which has no ONNX form: convert the float32 model")
    try:
        if target_suffix == ".onnx":
            lstmcore.onnx.export(model, args.target, opset=args.opset, lengths=args.lengths, softmax=args.softmax)
        else:
            model.save(args.target)
    except ImportError as error:
        raise TaskError(f"cannot write {args.target}: {error}") from None
    except (ValueError, TypeError) as error:
        raise TaskError(f"cannot write {args.target}: {error}") from None
    echo(f"wrote {args.target}")
    return 0
