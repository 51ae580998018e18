"""``lstmcore train ... --distributed mpi [--checkpoint DIR [--resume]]``: the options every
training task passes on to ``fit``, and what ranks other than 0 leave out.

Under ``mpiexec -n N lstmcore train ...`` every rank parses the same command line and
trains its share; rank 0 alone prints, saves the model, plots and writes the checkpoint.
"""

from __future__ import annotations

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


def task_keywords(args, accepted):
    """The keywords the train function gets besides its own options: ``fit_options`` for
    fit, and on ranks other than 0 no outputs and no talk."""
    if args.resume and not args.checkpoint:
        raise TaskError("--resume continues from --checkpoint DIR: give that folder")
    rank = 0
    if args.distributed:
        try:
            rank = _mpi.ranks_for(args.distributed).rank
        except ImportError as error:
            raise TaskError(str(error)) from None
    keywords = {
        "fit_options": {"distributed": args.distributed, "checkpoint": args.checkpoint, "resume": args.resume},
        "verbose": not args.quiet and rank == 0,
    }
    if rank == 0:
        check_output_folder(args.checkpoint)
    else:
        keywords.update({name: None for name in ("out", "plot") if name in accepted})
        keywords["echo"] = _silent
    return keywords


def _silent(*args, **kwargs):
    pass
