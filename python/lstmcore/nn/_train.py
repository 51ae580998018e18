"""The training loop behind ``Sequential.fit``, and batched evaluation.

One step: zero the gradients, forward in training mode, loss, backward, optional global
norm clipping, optimizer step. Everything random (the validation split, the order of the
samples) comes from ``np.random.default_rng(seed)``; with seeded layers (``seed=`` of
LSTM, Dense, Dropout, ...) two runs give identical histories.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tqdm

from lstmcore._typing import ArrayLike, Model
from lstmcore._util.blas import one_blas_thread
from lstmcore._util.checks import check_finite_real
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
    """

    def __init__(self) -> None:
        self.history: dict[str, list[Any]] = {}
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.interrupted = False

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
    result = {"loss": _ratio(total, count)}
    if metrics:
        result["accuracy"] = _ratio(correct, counted)
    return result


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
    """
    loss = _losses.get(loss)
    metrics = _checked_metrics(metrics, loss)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"expected epochs as an int >= 1, got {epochs!r}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"expected patience as an int >= 1 or None, got {patience!r}")
    if clip_norm is not None and not check_finite_real(clip_norm, "clip_norm") > 0:
        raise ValueError(f"expected clip_norm as a finite number > 0 or None, got {clip_norm!r}")
    _batch_slices(1, batch_size)  # the check
    x, y, lengths = _data(x, y, lengths, model=model)
    rng = np.random.default_rng(seed)
    train, validation = _validation(x, y, lengths, validation_data, validation_split, rng)
    if patience is not None and validation is None:
        raise ValueError("patience watches val_loss: give validation_data or validation_split")
    optimizer = Adam(model.params, lr=1e-3) if optimizer is None else optimizer
    schedule = _schedule_for(schedule, optimizer)

    history = History()
    best_loss, best_params, waited = math.inf, None, 0
    try:
        for epoch in range(epochs):
            started = time.perf_counter()
            lr = optimizer.lr  # the rate of this epoch; a schedule changes it after
            order = rng.permutation(train) if shuffle else train
            total = count = correct = counted = 0
            with tqdm.tqdm(
                total=len(order),
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="sample",
                file=sys.stderr,
                disable=not verbose,
                leave=False,
            ) as bar:
                for part in _batch_slices(len(order), batch_size):
                    index = order[part]
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
                    total, count = total + batch_total, count + batch_count
                    if metrics:
                        hits, seen = _accuracy_counts(loss, pred, batch_y, mask)
                        correct, counted = correct + hits, counted + seen
                    bar.update(len(index))
                    bar.set_postfix_str(f"loss {_ratio(total, count):.4f}", refresh=False)
            trained = time.perf_counter() - started
            record = {"loss": _ratio(total, count), "lr": lr}
            if metrics:
                record["accuracy"] = _ratio(correct, counted)
            if validation is not None:
                x_val, y_val, lengths_val = validation
                scores = evaluate(
                    model, x_val, y_val, loss=loss, batch_size=max(batch_size, 256), lengths=lengths_val, metrics=metrics
                )
                record["val_loss"] = scores["loss"]
                if metrics:
                    record["val_accuracy"] = scores["accuracy"]
            record["epoch_time"] = time.perf_counter() - started
            record["samples_per_s"] = len(order) / trained if trained > 0 else math.inf
            history._record(**record)
            if verbose:
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
            if patience is not None and waited >= patience:
                history.stopped_early = True
                break
    except KeyboardInterrupt:
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
        if verbose and (history.stopped_early or history.interrupted or history.best_epoch != history.epochs - 1):
            tqdm.tqdm.write(f"restored the weights of epoch {history.best_epoch + 1}", file=sys.stderr)
    return history
