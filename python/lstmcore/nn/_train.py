"""The training loop behind ``Sequential.fit``, and batched evaluation.

One step: zero the gradients, forward in training mode, loss, backward, optional global
norm clipping, optimizer step. Everything random (the validation split, the order of the
samples) comes from ``np.random.default_rng(seed)``; with seeded layers (``seed=`` of
LSTM, Dense, Dropout, ...) two runs give identical histories.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tqdm

from lstmcore._typing import ArrayLike, Model
from lstmcore._util.blas import one_blas_thread
from lstmcore._util.checks import check_finite_real
from lstmcore.nn import _checkpoint, _mpi
from lstmcore.nn import losses as _losses
from lstmcore.nn._batches import batch_slices as _batch_slices
from lstmcore.nn.optim import Adam, clip_grad_norm
from lstmcore.rnn._lengths import checked_lengths

_METRICS = ("accuracy",)


class History:
    """What ``fit`` did.

    ``history``: dict of per-epoch lists: ``loss`` (mean training loss of the epoch),
    ``lr`` (the rate used in the epoch), ``epoch_time`` (s, validation included),
    ``samples_per_s`` (training throughput), and when asked ``val_loss``, ``accuracy``,
    ``val_accuracy``. ``best_epoch``: 0-based index of the lowest ``val_loss`` (of
    ``loss`` without validation), None before any epoch ends. ``stopped_early``: patience
    ran out. ``interrupted``: Ctrl-C ended the run (the unfinished epoch is not recorded).
    ``resumed_epochs``: the epochs read from a checkpoint (``resume=True``), 0 for a run
    that started from scratch.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[Any]] = {}
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.interrupted = False
        self.resumed_epochs = 0

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def _record(self, **values):
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return (
            f"History(epochs={self.epochs}, best_epoch={self.best_epoch}, "
            f"stopped_early={self.stopped_early}, interrupted={self.interrupted})"
        )


# ----------------------------------------------------------------------- pieces


def _samples(name: str, array: ArrayLike, count: int) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 0 or len(array) != count:
        given = "a scalar" if array.ndim == 0 else f"{len(array)}"
        raise ValueError(f"expected {name} for the {count} samples of x, got {given}")
    return array


def _data(
    x: ArrayLike, y: ArrayLike, lengths: ArrayLike | None, label: str = "", *, model: Model | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """x, y and lengths checked; without lengths, those ``model`` reads off x (a masking
    first layer), so that per-step losses skip the padding."""
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"expected {label}x with at least one sample, got shape {np.shape(x)}")
    y = _samples(f"{label}y", y, len(x))
    if lengths is None and model is not None:
        lengths = model.lengths_of(x)
    if lengths is not None:
        lengths = _samples(f"{label}lengths", lengths, len(x))
        if x.ndim < 2:
            raise ValueError(f"lengths need {label}x with a time axis (N, T, ...), got shape {x.shape}")
        lengths = checked_lengths(lengths, len(x), x.shape[1])
    return x, y, lengths


def _loss_mask(model, pred, lengths):
    """(B, T) valid steps when the model outputs one prediction per step; else None."""
    if lengths is None or not model.output_is_sequence or pred.ndim < 2:
        return None
    return np.arange(pred.shape[1]) < lengths[:, None]


def _sum_count_grad(loss, pred, target, mask, gradient):
    if hasattr(loss, "sum_and_count"):
        return loss.sum_and_count(pred, target, mask, gradient=gradient) + ((None,) if not gradient else ())
    # a plain callable: its mean stands for the whole batch
    value, d_pred = loss(pred, target, mask)
    return float(value) * len(pred), len(pred), d_pred * len(pred)


def _accuracy_counts(loss, pred, target, mask):
    """(correct, counted) for a classification loss; mask (B, T) covers target's leading axes."""
    target = np.asarray(target)
    keep = np.ones(target.shape, bool)
    if mask is not None:
        keep &= mask.reshape(mask.shape + (1,) * (target.ndim - mask.ndim))
    if isinstance(loss, _losses.CrossEntropy):
        if loss.ignore_index is not None:
            keep &= target != loss.ignore_index
        hits = pred.argmax(axis=-1) == target
    else:
        hits = (pred > 0) == (target >= 0.5)
    return int(np.sum(hits & keep)), int(np.sum(keep))


def _checked_metrics(metrics, loss):
    metrics = [] if metrics is None else list(metrics)
    for metric in metrics:
        if metric not in _METRICS:
            raise ValueError(f"expected metrics among {list(_METRICS)}, got {metric!r}")
    if metrics and not isinstance(loss, (_losses.CrossEntropy, _losses.BinaryCrossEntropyWithLogits)):
        raise ValueError(f"accuracy needs a classification loss (cross_entropy, bce_with_logits), got {loss!r}")
    return metrics


def _take(array, index):
    return None if array is None else array[index]


def _ratio(total, count):
    return total / count if count else 0.0


@one_blas_thread()
def evaluate(
    model: Model,
    x: ArrayLike,
    y: ArrayLike,
    *,
    loss: str | Callable[..., Any],
    batch_size: int = 256,
    lengths: ArrayLike | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """``{"loss": mean, "accuracy": ...}`` over all of x, in inference mode."""
    loss = _losses.get(loss)
    metrics = _checked_metrics(metrics, loss)
    x, y, lengths = _data(x, y, lengths, model=model)
    total, count, correct, counted = _evaluation_sums(model, x, y, lengths, loss, batch_size, metrics)
    result = {"loss": _ratio(total, count)}
    if metrics:
        result["accuracy"] = _ratio(correct, counted)
    return result


def _evaluation_sums(model, x, y, lengths, loss, batch_size, metrics):
    """(loss sum, loss count, correct, counted) over checked x, y, lengths."""
    total = count = correct = counted = 0
    for part in _batch_slices(len(x), batch_size):
        batch_lengths = _take(lengths, part)
        pred = model(x[part], lengths=batch_lengths)
        mask = _loss_mask(model, pred, batch_lengths)
        batch_total, batch_count, _ = _sum_count_grad(loss, pred, y[part], mask, gradient=False)
        total, count = total + batch_total, count + batch_count
        if metrics:
            hits, seen = _accuracy_counts(loss, pred, y[part], mask)
            correct, counted = correct + hits, counted + seen
    return total, count, correct, counted


def _validation(x, y, lengths, validation_data, validation_split, rng):
    """(train indices, (x_val, y_val, lengths_val) or None)."""
    everything = np.arange(len(x))
    if validation_data is not None:
        if validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("expected validation_data as (x_val, y_val) or (x_val, y_val, lengths_val)")
        x_val, y_val, lengths_val = (tuple(validation_data) + (None,))[:3]
        return everything, _data(x_val, y_val, lengths_val, "validation ")
    if isinstance(validation_split, bool) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"expected validation_split in [0, 1), got {validation_split!r}")
    if not validation_split:
        return everything, None
    held = round(len(x) * validation_split)
    if not 1 <= held < len(x):
        raise ValueError(
            f"validation_split={validation_split} of {len(x)} samples holds out {held}; expected between 1 and {len(x) - 1}"
        )
    # a random hold-out, not the tail: data sets are often sorted by class or time
    order = rng.permutation(len(x))
    train, held_out = np.sort(order[held:]), np.sort(order[:held])
    return train, (x[held_out], y[held_out], _take(lengths, held_out))


def _schedule_for(schedule, optimizer):
    if schedule is None or hasattr(schedule, "step"):
        if schedule is not None and getattr(schedule, "optimizer", optimizer) is not optimizer:
            raise ValueError("the schedule wraps another optimizer than the one fit uses; pass that optimizer too")
        return schedule
    if callable(schedule):
        return schedule(optimizer)  # a factory, for the default optimizer fit makes
    raise TypeError(f"expected schedule as a schedule or a function optimizer -> schedule, got {type(schedule).__name__}")


def _summary(epoch, epochs, record):
    parts = [f"epoch {epoch + 1}/{epochs}", f"loss {record['loss']:.4f}"]
    for key in ("accuracy", "val_loss", "val_accuracy"):
        if key in record:
            parts.append(f"{key} {record[key]:.4f}")
    parts += [f"lr {record['lr']:.3g}", f"{record['epoch_time']:.2f}s", f"{record['samples_per_s']:.0f} samples/s"]
    return "  ".join(parts)


# ----------------------------------------------------------------------- fit


@one_blas_thread()
def fit(
    model: Model,
    x: ArrayLike,
    y: ArrayLike,
    *,
    loss: str | Callable[..., Any],
    optimizer: Any = None,
    epochs: int = 10,
    batch_size: int = 32,
    validation_data: tuple[ArrayLike, ...] | None = None,
    validation_split: float = 0.0,
    shuffle: bool = True,
    seed: int | None = 0,
    patience: int | None = None,
    restore_best_weights: bool = True,
    clip_norm: float | None = None,
    schedule: Any = None,
    lengths: ArrayLike | None = None,
    verbose: bool = True,
    metrics: Sequence[str] | None = None,
    distributed: Any = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> History:
    """Train ``model`` on (x, y) in mini-batches; returns a ``History``.

    x: (N, T, F) floats or (N, T) ids; y: what ``loss`` compares with the model output
    (per sequence or per step). lengths: (N,) valid steps per sequence; per-step outputs
    are then scored on valid steps only. loss: a name ("mse", "cross_entropy",
    "bce_with_logits") or a loss object. optimizer: built on ``model.params``; default
    Adam(lr=1e-3). schedule: a schedule of that optimizer, or a function optimizer ->
    schedule; stepped once after every epoch. validation_data: (x_val, y_val[,
    lengths_val]); or validation_split: a seeded random fraction held out.
    patience: stop after that many epochs in a row without a lower val_loss. restore_best_weights:
    with validation, the model ends with the weights of the best epoch (also after a
    normal end or Ctrl-C). clip_norm: global gradient norm limit. metrics: ["accuracy"]
    for classification. verbose: a progress bar per epoch and a summary line, on stderr.
    Ctrl-C abandons the current epoch, restores the best weights (with validation) and
    returns the history with ``interrupted=True``.

    distributed="mpi": data-parallel over the processes of an MPI job (``mpiexec -n N python -m mpi4py``,
    every rank given the same arguments; docs/distributed.md): rank 0's parameters are
    broadcast, ``batch_size`` is the global batch of which each rank computes a share, the
    gradients are summed with one Allreduce per step, and every rank returns the same
    History; only rank 0 prints and writes files. The loss must give its sum and count
    of loss terms (a name, an lstmcore.losses object, or ``sum_and_count``): a plain
    callable is refused, its mean cannot weight the ranks' shares. A rank that fails makes every rank raise
    (``lstmcore.distributed.RankFailed`` on the others); a failure that cannot be shared
    so, and Ctrl-C, end the job (MPI_Abort).

    checkpoint: a folder; after every epoch ``checkpoint.npz`` there is replaced
    atomically by the run's state (parameters, optimizer state, epoch, random states).
    resume=True continues from it, taking the same steps as an uninterrupted run (the
    same data, batch size, seed and a freshly built optimizer and schedule of the same
    kind are expected); without one it starts from scratch and says so.
    """
    if distributed is not None and callable(loss) and not hasattr(loss, "sum_and_count"):
        # A plain callable gives its batch's mean: the ranks' shares could only be weighted
        # by their rows, which is wrong whenever rows hold different numbers of loss terms
        # (lengths, masks). Refused here, on every rank alike, before any collective.
        raise TypeError(
            "distributed= needs a loss that gives its sum and its count of loss terms: a name ('mse', "
            "'cross_entropy', 'bce_with_logits'), an lstmcore.losses object, or an object with a method "
            "sum_and_count(pred, target, mask, *, gradient) -> (sum, count) or, with gradient=True, "
            f"(sum, count, d_sum); got {getattr(loss, '__name__', type(loss).__name__)!s}, a plain callable"
        )
    ranks = _mpi.ranks_for(distributed)
    if ranks.size == 1:
        ranks = _mpi.Local()  # nothing to exchange: the one-process loop, bit for bit
    options = dict(
        loss=loss,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        validation_split=validation_split,
        shuffle=shuffle,
        seed=seed,
        patience=patience,
        restore_best_weights=restore_best_weights,
        clip_norm=clip_norm,
        schedule=schedule,
        lengths=lengths,
        verbose=verbose,
        metrics=metrics,
        checkpoint=checkpoint,
        resume=resume,
    )
    if not isinstance(ranks, _mpi.Ranks):
        return _fit(model, x, y, ranks, **options)
    try:
        return _fit(model, x, y, ranks, **options)
    except BaseException as error:
        if not ranks.agreed:
            # Raised where the other ranks may wait in a collective this rank will not
            # join: only ending the job frees them.
            ranks.abort(error)
        raise


def _fit(
    model,
    x,
    y,
    ranks,
    *,
    loss,
    optimizer,
    epochs,
    batch_size,
    validation_data,
    validation_split,
    shuffle,
    seed,
    patience,
    restore_best_weights,
    clip_norm,
    schedule,
    lengths,
    verbose,
    metrics,
    checkpoint,
    resume,
):
    with ranks.together("checking fit's arguments"):
        loss = _losses.get(loss)
        metrics = _checked_metrics(metrics, loss)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"expected epochs as an int >= 1, got {epochs!r}")
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise ValueError(f"expected patience as an int >= 1 or None, got {patience!r}")
        if clip_norm is not None and not check_finite_real(clip_norm, "clip_norm") > 0:
            raise ValueError(f"expected clip_norm as a finite number > 0 or None, got {clip_norm!r}")
        if resume and checkpoint is None:
            raise ValueError("resume=True continues from checkpoint=DIR: give that folder")
        _batch_slices(1, batch_size)  # the check
        x, y, lengths = _data(x, y, lengths, model=model)
        optimizer = Adam(model.params, lr=1e-3) if optimizer is None else optimizer
        schedule = _schedule_for(schedule, optimizer)
        if checkpoint is not None and not isinstance(getattr(optimizer, "state", None), dict):
            raise TypeError(f"checkpoint needs an optimizer with a .state dict (SGD, Adam, AdamW), got {optimizer!r}")
    talk = verbose and ranks.rank == 0
    saved = _read_checkpoint(checkpoint, ranks, talk) if resume else None
    # seed=None draws one (the same on every rank), which the checkpoint records: a run
    # resumed with seed=None holds out and shuffles as the run that wrote it did
    given_seed = seed
    seed = saved.seed if saved is not None and given_seed is None else ranks.same_seed(given_seed)
    rng = np.random.default_rng(seed)
    with ranks.together("splitting off the validation data"):
        train, validation = _validation(x, y, lengths, validation_data, validation_split, rng)
        if patience is not None and validation is None:
            raise ValueError("patience watches val_loss: give validation_data or validation_split")
        if validation is not None:
            validation = _data(*validation, "validation ", model=model)  # lengths a masking layer reads
    settings = _settings(model, len(x), batch_size, given_seed, shuffle, validation)
    gradients = None
    if ranks.collective:
        loop = dict(epochs=epochs, patience=patience, clip_norm=clip_norm, metrics=metrics, seed=seed, resume=resume)
        loop["checkpoint"] = checkpoint is not None
        ranks.check_same(_description(settings, loop, x, y, lengths), "arguments of fit (data, options)")
        ranks.broadcast_params(model.params)
        _checkpoint.give_rank_its_streams(model, ranks.rank)
        gradients = _mpi.Gradients(model.params)

    history = History()
    best_loss, best_params, waited, first_epoch = math.inf, None, 0, 0
    if saved is not None:
        _resume(saved, ranks, model, optimizer, schedule, rng, settings, talk)
        header = saved.header
        history.history = {key: list(values) for key, values in header["history"].items()}
        history.best_epoch, history.stopped_early = header["best_epoch"], header["stopped_early"]
        history.resumed_epochs = first_epoch = header["epochs_done"]
        best_loss, waited = header["best_loss"], header["waited"]
        best_params = saved.best_params
    try:
        for epoch in range(first_epoch, 0 if history.stopped_early else epochs):
            started = time.perf_counter()
            lr = optimizer.lr  # the rate of this epoch; a schedule changes it after
            order = rng.permutation(train) if shuffle else train
            total = count = correct = counted = 0  # this rank's
            shown_total = shown_count = 0.0  # the whole batches', for the progress bar
            with tqdm.tqdm(
                total=len(order),
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="sample",
                file=sys.stderr,
                disable=not talk,
                leave=False,
            ) as bar:
                for part in _batch_slices(len(order), batch_size):
                    index = order[part]
                    if gradients is None:
                        sums = _step(model, loss, x, y, lengths, index, metrics, optimizer, clip_norm)
                    else:
                        step = (model, loss, x, y, lengths, index, metrics, optimizer, clip_norm)
                        sums = _distributed_step(*step, ranks, gradients)
                    batch_total, batch_count, hits, seen, whole_total, whole_count = sums
                    total, count = total + batch_total, count + batch_count
                    correct, counted = correct + hits, counted + seen
                    shown_total, shown_count = shown_total + whole_total, shown_count + whole_count
                    bar.update(len(index))
                    bar.set_postfix_str(f"loss {_ratio(shown_total, shown_count):.4f}", refresh=False)
            trained = time.perf_counter() - started
            validation_sums = [0.0, 0.0, 0.0, 0.0]
            if validation is not None:
                with ranks.together("evaluating the validation data"):
                    x_val, y_val, lengths_val = validation
                    share = ranks.rows(len(x_val))
                    if share.stop > share.start:
                        batch = max(batch_size, 256)
                        shared = (x_val[share], y_val[share], _take(lengths_val, share))
                        validation_sums = list(_evaluation_sums(model, *shared, loss, batch, metrics))
            epoch_time = time.perf_counter() - started
            if ranks.collective:
                # the sums over the ranks, and rank 0's times (every rank records the same)
                times = [trained, epoch_time] if ranks.rank == 0 else [0.0, 0.0]
                mine = [total, count, correct, counted, *validation_sums, *times]
                summed = [float(value) for value in ranks.sum(mine, None, "summing the epoch")]
                total, count, correct, counted = summed[:4]
                validation_sums, (trained, epoch_time) = summed[4:8], summed[8:]
            record = {"loss": _ratio(total, count), "lr": lr}
            if metrics:
                record["accuracy"] = _ratio(correct, counted)
            if validation is not None:
                record["val_loss"] = _ratio(validation_sums[0], validation_sums[1])
                if metrics:
                    record["val_accuracy"] = _ratio(validation_sums[2], validation_sums[3])
            record["epoch_time"] = epoch_time
            record["samples_per_s"] = len(order) / trained if trained > 0 else math.inf
            history._record(**record)
            if talk:
                tqdm.tqdm.write(_summary(epoch, epochs, record), file=sys.stderr)

            watched = record.get("val_loss", record["loss"])
            if watched < best_loss:
                best_loss, history.best_epoch, waited = watched, epoch, 0
                if validation is not None and restore_best_weights:
                    best_params = {name: array.copy() for name, array in model.params.items()}
            else:
                waited += 1
            if schedule is not None:
                schedule.step()
            history.stopped_early = patience is not None and waited >= patience
            if ranks.collective:
                ranks.check_same_params(model.params)
            if checkpoint is not None:
                state = dict(
                    epochs_done=epoch + 1,
                    history=history.history,
                    best_epoch=history.best_epoch,
                    best_loss=best_loss,
                    waited=waited,
                    stopped_early=history.stopped_early,
                    rng=rng.bit_generator.state,
                    seed=seed,
                    settings=settings,
                )
                _write_checkpoint(checkpoint, ranks, model, optimizer, best_params, state)
            if history.stopped_early:
                break
    except KeyboardInterrupt:
        if ranks.collective:
            raise  # the other ranks may wait in a collective: fit ends the job
        history.interrupted = True
        if verbose:
            tqdm.tqdm.write(f"interrupted after {history.epochs} complete epoch(s)", file=sys.stderr)
    if history.best_epoch is None and history.epochs:
        history.best_epoch = 0  # every loss was NaN
    if best_params is not None:
        assert history.best_epoch is not None  # set by the epoch that saved best_params
        params = model.params
        for name, array in best_params.items():
            params[name] = array
        if talk and (history.stopped_early or history.interrupted or history.best_epoch != history.epochs - 1):
            tqdm.tqdm.write(f"restored the weights of epoch {history.best_epoch + 1}", file=sys.stderr)
    return history


def _step(model, loss, x, y, lengths, index, metrics, optimizer, clip_norm):
    """One step on the whole batch; (loss sum, count, hits, seen) and again the sum and count."""
    batch_y, batch_lengths = y[index], _take(lengths, index)
    model.zero_grad()
    pred, tape = model.forward(x[index], training=True, lengths=batch_lengths)
    mask = _loss_mask(model, pred, batch_lengths)
    batch_total, batch_count, d_total = _sum_count_grad(loss, pred, batch_y, mask, gradient=True)
    if batch_count:
        model.backward(tape, d_total / d_total.dtype.type(batch_count))
        if clip_norm is not None:
            clip_grad_norm(model.grads, clip_norm)
        optimizer.step(model.grads)
    hits = seen = 0
    if metrics:
        hits, seen = _accuracy_counts(loss, pred, batch_y, mask)
    return batch_total, batch_count, hits, seen, batch_total, batch_count


def _distributed_step(model, loss, x, y, lengths, index, metrics, optimizer, clip_norm, ranks, gradients):
    """One step of which this rank computes its share of the batch's rows: the backward of
    its SUM of losses, summed over the ranks, divided by the whole batch's count of loss
    terms, is the gradient of the batch's mean loss; every rank then takes the same step.
    Returns this rank's (loss sum, count, hits, seen), then the whole batch's sum and count."""
    mine = index[ranks.rows(len(index))]
    total, count, hits, seen, error = 0.0, 0, 0, 0, None
    try:
        model.zero_grad()
        if len(mine):
            batch_y, batch_lengths = y[mine], _take(lengths, mine)
            pred, tape = model.forward(x[mine], training=True, lengths=batch_lengths)
            mask = _loss_mask(model, pred, batch_lengths)
            total, count, d_total = _sum_count_grad(loss, pred, batch_y, mask, gradient=True)
            count = int(count)
            if count:
                model.backward(tape, d_total)
            if metrics:
                hits, seen = _accuracy_counts(loss, pred, batch_y, mask)
    except Exception as failure:
        error = failure
    whole_count, whole_total = gradients.reduce(ranks, model.grads, error, count, total)
    if whole_count:
        gradients.unpack_mean(model.grads, whole_count)
        if clip_norm is not None:
            clip_grad_norm(model.grads, clip_norm)
        optimizer.step(model.grads)
    return total, count, hits, seen, whole_total, whole_count


# ----------------------------------------------------------------------- checkpoints


def _settings(model, samples, batch_size, seed, shuffle, validation):
    """What a resumed run must share with the run that wrote the checkpoint (as JSON reads it back)."""
    settings = {
        "samples": samples,
        "batch_size": batch_size,
        "seed": seed,
        "shuffle": bool(shuffle),
        "validation_samples": None if validation is None else len(validation[0]),
        "params": {name: [list(array.shape), str(array.dtype)] for name, array in model.params.items()},
    }
    return json.loads(json.dumps(settings))


def _description(settings, loop, x, y, lengths):
    """Bytes that differ when ranks were given different data or options: the settings,
    the loop's options, the arrays' shapes and dtypes and a few of their rows."""
    parts = [json.dumps([settings, loop], default=repr, sort_keys=True).encode()]
    for array in (x, y, lengths):
        if array is None:
            parts.append(b"none")
            continue
        parts.append(f"{array.shape} {array.dtype}".encode())
        for row in sorted({0, len(array) // 2, len(array) - 1}):
            parts.append(np.ascontiguousarray(array[row]).tobytes())
    return b"\0".join(parts)


def _read_checkpoint(checkpoint, ranks, talk):
    """The checkpoint in the folder ``checkpoint`` (read by rank 0, its bytes sent to every
    rank), its header checked; None when there is none."""
    path = _checkpoint.path_of(checkpoint)
    data = None
    with ranks.together("reading the checkpoint"):
        if ranks.rank == 0:
            data = _checkpoint.read(checkpoint)
    if ranks.collective:
        data = ranks.broadcast_bytes(data)
    if data is None:
        if talk:
            tqdm.tqdm.write(f"no checkpoint in {os.fspath(checkpoint)}: training from scratch", file=sys.stderr)
        return None
    with ranks.together("reading the checkpoint"):
        saved = _checkpoint.Checkpoint(data, path)
    return saved


def _resume(saved, ranks, model, optimizer, schedule, rng, settings, talk):
    """The checkpoint ``saved`` checked against this run and restored into the model, the
    optimizer, the schedule and fit's generator ``rng``."""
    with ranks.together("resuming from the checkpoint"):
        saved.check_run(settings)
        saved.restore(model, optimizer, schedule, rng, ranks.rank, ranks.size)
    if talk:
        done = saved.header["epochs_done"]
        tqdm.tqdm.write(f"resuming from {saved.path}: {done} epoch(s) done", file=sys.stderr)


def _write_checkpoint(checkpoint, ranks, model, optimizer, best_params, state):
    """Rank 0 writes the checkpoint, with every rank's layer generators (dropout streams)."""
    states = _checkpoint.generator_states(model)
    if ranks.collective:
        texts = ranks.gather_text(json.dumps(states))
        every = None if texts is None else [json.loads(text) for text in texts]
    else:
        every = [states]
    with ranks.together("writing the checkpoint"):
        if ranks.rank == 0:
            assert every is not None  # gathered on rank 0
            arrays = dict(model=model, optimizer=optimizer, best_params=best_params)
            data = _checkpoint.encode(**arrays, state=state, layer_states=every)
            _checkpoint.write(checkpoint, data)
