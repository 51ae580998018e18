"""The ranks of a data-parallel ``fit`` over MPI, and the few collectives it uses.

mpi4py is imported here only, and only when ``fit(distributed="mpi")`` runs.

- Rows: every rank is given the same data; of each global batch of B rows rank r of N takes
  rows [r*B//N, (r+1)*B//N) (contiguous, sizes differing by at most one, an uneven last
  batch included; a rank may get none).
- One step is one ``Allreduce`` (SUM) per dtype of the parameters (one for every model of a
  single dtype) of a flat buffer: each gradient of the rank's SUM of losses, then four
  slots: a failure flag, the rank's count of loss terms (as count // 4096 and count %
  4096, so their sums stay exact in float32 up to 2**36 terms), and its loss sum (for the
  progress bar). The sum of the gradients divided by the summed count is the gradient of
  the global batch's mean loss, as one process computes it.
- Failures: a rank whose work between two collectives raises puts its flag up instead of
  its numbers; every rank sees the flag in the sum, they exchange the messages, the failed
  rank raises its own error and the others ``RankFailed`` naming it: every rank stops
  with the error, and the communicator is left consistent (the error is marked:
  ``raised_on_every_rank``). Anything raised elsewhere in ``fit`` (where the other ranks
  may already wait in a collective) ends the job with ``Abort`` after printing the error
  (``fit`` does that; the command line too for errors outside fit). Outside fit a user's
  script must end the job itself: ``python -m mpi4py script.py`` does (docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn, cast

import numpy as np

# The slots after a step's gradients: failure flag, count // 4096, count % 4096, loss sum.
_SLOTS = 4
_LOW = 4096
_MAX_COUNT = 2**36  # count // 4096 summed over the ranks stays below 2**24, exact in float32
_ABORT_GRACE_S = 1.0


class RankFailed(RuntimeError):
    """Another rank of the MPI job failed; the message names it and its error."""


_EVERY_RANK = "_lstmcore_raised_on_every_rank"


def raised_on_every_rank(error: BaseException) -> bool:
    """Whether ``error`` was raised on every rank together (by ``Ranks.fail_together``):
    then no rank waits in a collective, and the job may end without MPI_Abort."""
    return bool(getattr(error, _EVERY_RANK, False))


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            "fit(distributed='mpi') needs mpi4py and an MPI library: pip install 'lstmcore[mpi]' "
            f"(or mpi4py built against the cluster's MPI) ({error})"
        ) from error
    return MPI


def ranks_for(distributed: Any) -> Ranks | Local:
    """The ranks that ``fit(distributed=...)`` trains on: ``None`` -> this process alone;
    ``"mpi"`` -> every process of MPI's COMM_WORLD; an mpi4py communicator -> its ranks."""
    if distributed is None:
        return Local()
    if isinstance(distributed, str):
        if distributed != "mpi":
            raise ValueError(f"expected distributed as None, 'mpi' or an mpi4py communicator, got {distributed!r}")
        MPI = _mpi()
        return Ranks(MPI.COMM_WORLD, MPI)
    if hasattr(distributed, "Allreduce") and hasattr(distributed, "Get_rank"):
        return Ranks(distributed, _mpi())
    raise TypeError(f"expected distributed as None, 'mpi' or an mpi4py communicator, got {type(distributed).__name__}")


def fresh_seed() -> int:
    """A seed drawn from the OS's entropy, as ``default_rng(None)`` draws one; fit records
    it in its checkpoint, so that a resumed run splits and shuffles as the first did."""
    return int(cast(int, np.random.SeedSequence().entropy))


class Local:
    """One process: the collectives of ``Ranks`` with nothing to exchange."""

    rank, size, collective, agreed = 0, 1, False, False

    def rows(self, count: int) -> slice:
        return slice(0, count)

    @contextlib.contextmanager
    def together(self, what: str) -> Iterator[None]:
        yield

    def same_seed(self, seed: int | None) -> int:
        return fresh_seed() if seed is None else seed


class Ranks:
    """The ranks of a communicator of more than one process."""

    collective = True

    def __init__(self, comm: Any, MPI: Any) -> None:
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.agreed = False  # set when every rank raises the same failure together

    def rows(self, count: int) -> slice:
        """This rank's rows of a batch of ``count`` rows."""
        return slice(self.rank * count // self.size, (self.rank + 1) * count // self.size)

    # ----------------------------------------------------------------- failures

    @contextlib.contextmanager
    def together(self, what: str) -> Iterator[None]:
        """Runs the block on every rank, then raises on every rank if it raised on any."""
        try:
            yield
        except Exception as error:
            self.agree(error, what)
            raise  # agree re-raises it; here for the type checker
        self.agree(None, what)

    def agree(self, error: BaseException | None, what: str) -> None:
        flag = np.array([0.0 if error is None else 1.0])
        self.comm.Allreduce(self.MPI.IN_PLACE, flag, op=self.MPI.SUM)
        if flag[0]:
            self.fail_together(error, what)

    def fail_together(self, error: BaseException | None, what: str) -> NoReturn:
        """Every rank calls this once a sum showed a failure: the messages are exchanged,
        the failed rank raises its error, the others RankFailed."""
        messages = self.comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
        failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
        self.agreed = True
        if error is None:
            rank, message = failed[0]
            more = f" (and {len(failed) - 1} other rank(s))" if len(failed) > 1 else ""
            error = RankFailed(f"rank {rank} of {self.size} failed {what}{more}: {message}")
        with contextlib.suppress(AttributeError, TypeError):
            setattr(error, _EVERY_RANK, True)
        raise error

    def abort(self, error: BaseException) -> NoReturn:
        """Ends every rank of the job (where other ranks may wait in a collective that this
        rank will not join), after printing the error on stderr."""
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        sys.stderr.write(f"lstmcore: rank {self.rank} of {self.size} failed; ending the MPI job (MPI_Abort)\n{text}")
        sys.stderr.flush()
        # The launcher forwards this rank's output through a pipe; MPI_Abort may tear the job
        # down before it has read it (seen with MPICH's hydra on a loaded machine): a moment first.
        time.sleep(_ABORT_GRACE_S)
        self.comm.Abort(130 if isinstance(error, KeyboardInterrupt) else 1)
        raise error  # Abort does not return; a communicator that did would leave it here

    # ----------------------------------------------------------------- setup

    def same_seed(self, seed: int | None) -> int:
        """None becomes one fresh seed drawn by rank 0 for every rank (fit's shuffling and
        validation split must be the same on all)."""
        if seed is None:
            seed = self.comm.bcast(fresh_seed() if self.rank == 0 else None, root=0)
        return seed

    def check_same(self, description: bytes, what: str) -> None:
        """Raises on every rank unless ``description`` is the same bytes on every rank."""
        digest = np.frombuffer(hashlib.blake2b(description, digest_size=16).digest(), np.uint8).copy()
        first = digest.copy()
        self.comm.Bcast(first, root=0)
        error = None if np.array_equal(first, digest) else ValueError(f"this rank's {what} differ from rank 0's")
        self.agree(error, f"the check that every rank holds the same {what}")

    def broadcast_params(self, params: Mapping[str, np.ndarray]) -> None:
        """Rank 0's parameters written into every rank's (one Bcast per dtype)."""
        for dtype, names in _by_dtype(params).items():
            flat = np.concatenate([params[name].reshape(-1) for name in names]) if names else np.empty(0, dtype)
            self.comm.Bcast(flat, root=0)
            offset = 0
            for name in names:
                target = params[name]
                target[...] = flat[offset : offset + target.size].reshape(target.shape)
                offset += target.size

    def broadcast_bytes(self, data: bytes | None) -> bytes | None:
        """Rank 0's bytes (or None) on every rank: files are read by rank 0 alone."""
        size = np.array([-1 if data is None or self.rank != 0 else len(data)], np.int64)
        self.comm.Bcast(size, root=0)
        if size[0] < 0:
            return None
        buffer = np.frombuffer(data, np.uint8).copy() if self.rank == 0 and data is not None else np.empty(size[0], np.uint8)
        self.comm.Bcast(buffer, root=0)
        return buffer.tobytes()

    def gather_text(self, text: str) -> list[str] | None:
        """Every rank's text, on rank 0 (None elsewhere)."""
        return self.comm.gather(text, root=0)

    def scatter_text(self, texts: list[str] | None) -> str:
        """Rank 0's ``texts[r]`` on rank r."""
        return self.comm.scatter(texts, root=0)

    # ----------------------------------------------------------------- reductions

    def sum(self, values: list[float], error: BaseException | None, what: str) -> np.ndarray:
        """The float64 sums of ``values`` over the ranks; raises on every rank if any rank
        gives an error instead."""
        failed = error is not None
        buffer = np.array([0.0] * len(values) + [1.0] if failed else [*values, 0.0], np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        if buffer[-1]:
            self.fail_together(error, what)
        return buffer[:-1]

    def check_same_params(self, params: Mapping[str, np.ndarray]) -> None:
        """Raises on every rank unless every rank's parameters are bitwise rank 0's: the
        optimizer's steps must stay identical, and an MPI whose Allreduce handed ranks
        different sums would let them drift apart silently."""
        digest = hashlib.blake2b(digest_size=16)
        for name in params:
            digest.update(np.ascontiguousarray(params[name]).tobytes())
        self.check_same(digest.digest(), "parameters (the ranks drifted apart)")


def _by_dtype(params: Mapping[str, np.ndarray]) -> dict[np.dtype, list[str]]:
    groups: dict[np.dtype, list[str]] = {}
    for name in params:
        groups.setdefault(params[name].dtype, []).append(name)
    return groups


class Gradients:
    """The flat buffers a step's gradients are summed in (one per dtype of the parameters),
    the step's slots at the end of the first."""

    def __init__(self, params: Mapping[str, np.ndarray]) -> None:
        self.layout = []  # (buffer index, name, offset, size, shape)
        self.buffers = []
        for index, (dtype, names) in enumerate(_by_dtype(params).items()):
            offset = 0
            for name in names:
                self.layout.append((index, name, offset, params[name].size, params[name].shape))
                offset += params[name].size
            self.buffers.append(np.zeros(offset + (_SLOTS if index == 0 else 0), dtype))
        if not self.buffers:
            self.buffers.append(np.zeros(_SLOTS, np.float32))

    def reduce(
        self, ranks: Ranks, grads: Mapping[str, np.ndarray], error: BaseException | None, count: int, loss_sum: float
    ) -> tuple[int, float]:
        """Sums every rank's gradients (of its sum of losses) in place; returns the global
        (count of loss terms, loss sum in the gradients' precision); raises on every rank
        when one gave an error instead of its numbers."""
        if error is None and count >= _MAX_COUNT:
            error = ValueError(f"a batch share of {count} loss terms; at most {_MAX_COUNT - 1} are summed exactly")
        for buffer in self.buffers:
            buffer[...] = 0
        if error is None:
            for index, name, offset, size, _ in self.layout:
                self.buffers[index][offset : offset + size] = grads[name].reshape(-1)
            self.buffers[0][-_SLOTS:] = (0, count // _LOW, count % _LOW, loss_sum)
        else:
            self.buffers[0][-_SLOTS] = 1
        for buffer in self.buffers:
            ranks.comm.Allreduce(ranks.MPI.IN_PLACE, buffer, op=ranks.MPI.SUM)
        failed, high, low, total = (float(value) for value in self.buffers[0][-_SLOTS:])
        if failed:
            ranks.fail_together(error, "in a training step")
        return int(high) * _LOW + int(low), total

    def unpack_mean(self, grads: Mapping[str, np.ndarray], count: int) -> None:
        """The summed gradients divided by the global count, written into ``grads``."""
        for index, name, offset, size, shape in self.layout:
            part = self.buffers[index][offset : offset + size]
            grads[name][...] = (part / part.dtype.type(count)).reshape(shape)
