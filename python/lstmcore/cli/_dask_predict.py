"""``lstmcore predict MODEL --input 'data/*.npy' --output out/ [--dask tcp://HOST:8786]``:
batch inference over files, on a Dask cluster (``lstmcore.distributed.predict``), one
``.npy`` per input file.
"""

from __future__ import annotations

import lstmcore
from lstmcore.cli._errors import TaskError
from lstmcore.cli._files import check_output_folder


def add_options(predict, whole_number, path):
    """``whole_number``, ``path``: the argument types of a batch size and of a file name."""
    group = predict.add_argument_group("batch inference over files (needs lstmcore[dask])")
    group.add_argument("--input", metavar="PATTERN", help="input files: a glob pattern of .npy, .csv or .parquet files")
    group.add_argument("--output", type=path, metavar="DIR", help="folder for one .npy per input file")
    group.add_argument(
        "--dask", metavar="ADDRESS", help="the Dask scheduler to run on (tcp://HOST:8786); default: this process's threads"
    )
    group.add_argument("--batch-size", type=whole_number, default=256, help="rows per call of the core (default %(default)s)")


def wanted(args):
    return args.input is not None or args.output is not None or args.dask is not None


def run(args):
    if args.input is None or args.output is None:
        raise TaskError("batch inference over files needs --input PATTERN and --output DIR")
    if args.csv is not None or args.text:
        raise TaskError("--input reads its own files: leave out --csv and --text")
    check_output_folder(args.output)
    client = None
    try:
        if args.dask is not None:
            from distributed import Client

            client = Client(args.dask, timeout=30)
        written = lstmcore.distributed.predict(
            args.model, args.input, client=client, batch_size=args.batch_size, output=args.output
        )
    except ImportError as error:
        raise TaskError(f"{error}") from None
    finally:
        if client is not None:
            client.close()
    print(f"wrote {len(written)} output(s) to {args.output}")
    return 0
