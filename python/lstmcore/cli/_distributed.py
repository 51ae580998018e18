"""``lstmcore train ... --distributed mpi [--checkpoint DIR [--resume]]``: the options every
training task passes on to ``fit``, and what ranks other than 0 leave out.

Under ``mpiexec -n N lstmcore train ...`` every rank parses the same command line and
trains its share; rank 0 alone prints, saves the model, plots and writes the checkpoint.
The options are checked on every rank together (every rank exits with the error); any
other error raised on one rank alone (its data, its output) ends the whole job with
MPI_Abort, since the other ranks may be waiting for it in a collective of ``fit``.
"""

from __future__ import annotations

import contextlib

from lstmcore.cli._errors import TaskError
from lstmcore.cli._files import check_output_folder
from lstmcore.nn import _mpi


def add_options(group, path):
    """``path``: the argument type of a folder name."""
    group.add_argument(
        "--distributed",
        choices=("mpi",),
        help="train data-parallel over the ranks of an MPI job (launch with mpiexec -n N; needs lstmcore[mpi])",
    )
    group.add_argument(
        "--checkpoint",
        type=path,
        metavar="DIR",
        help="write the training state to DIR/checkpoint.npz after every epoch",
    )
    group.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint DIR, if any")


@contextlib.contextmanager
def one_job(args):
    """Yields the ranks of the job (``_mpi.Local`` without ``--distributed``); an error that
    was not raised on every rank together ends every rank of the job (MPI_Abort, after
    printing it), so that no rank waits forever for one that left."""
    if not args.distributed:
        yield _mpi.Local()
        return
    try:
        ranks = _mpi.ranks_for(args.distributed)
    except ImportError as error:
        raise TaskError(str(error)) from None
    if ranks.size == 1:
        yield _mpi.Local()
        return
    try:
        yield ranks
    except BaseException as error:
        if not _mpi.raised_on_every_rank(error):
            ranks.abort(error)
        raise


def task_keywords(args, accepted, ranks):
    """The keywords the train function gets besides its own options: ``fit_options`` for
    fit, and on ranks other than 0 no outputs and no talk. The options are checked on
    every rank of ``ranks`` together."""
    with ranks.together("checking the command line's options"):
        if args.resume and not args.checkpoint:
            raise TaskError("--resume continues from --checkpoint DIR: give that folder")
        if ranks.rank == 0:
            check_output_folder(args.checkpoint)
    keywords = {
        "fit_options": {"distributed": args.distributed, "checkpoint": args.checkpoint, "resume": args.resume},
        "verbose": not args.quiet and ranks.rank == 0,
    }
    if ranks.rank != 0:
        keywords.update({name: None for name in ("out", "plot") if name in accepted})
        keywords["echo"] = _silent
    return keywords


def _silent(*args, **kwargs):
    pass
