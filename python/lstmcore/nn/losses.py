"""Losses: ``value, d_pred = loss(pred, target, mask=None)``.

``value`` is the mean loss (a Python float) over the counted elements and ``d_pred`` its
gradient with respect to ``pred`` (pred's shape and dtype). ``mask`` (optional, bool or
0/1) has the leading shape of the per-element losses, e.g. (B, T) for per-step outputs
(B, T, F), and excludes the masked-out elements from the sum and from the count. When
nothing is counted the loss is 0 with a zero gradient.

``loss.sum_and_count(pred, target, mask=None, gradient=False)`` returns the sum and the
count behind the mean (and the gradient of the sum), so means over many batches are exact.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike

from lstmcore._util.checks import shape_text

__all__ = ["MeanSquaredError", "CrossEntropy", "BinaryCrossEntropyWithLogits", "get"]


def _float_pred(pred: ArrayLike) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.dtype.kind != "f":
        raise ValueError(f"expected pred as a float array, got dtype {pred.dtype}")
    return pred


def _same_shape(pred: np.ndarray, target: np.ndarray, what: str) -> None:
    if target.shape != pred.shape:
        raise ValueError(f"expected {what} of the shape of pred {shape_text(pred.shape)}, got {shape_text(target.shape)}")


@overload
def _element_mask(mask: None, shape: tuple[int, ...]) -> None: ...
@overload
def _element_mask(mask: ArrayLike, shape: tuple[int, ...]) -> np.ndarray: ...
def _element_mask(mask: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``mask`` broadcast to ``shape`` (it must match its leading axes), as bools; or None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype.kind not in "biu":
        raise ValueError(f"expected mask as bool or 0/1 integers, got dtype {mask.dtype}")
    if mask.shape != shape[: mask.ndim]:
        raise ValueError(f"expected mask of a leading shape of {shape_text(shape)}, got {shape_text(mask.shape)}")
    mask = mask.astype(bool).reshape(mask.shape + (1,) * (len(shape) - mask.ndim))
    return np.broadcast_to(mask, shape)


class _Loss:
    name = ""

    def __call__(self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> tuple[float, np.ndarray]:
        total, count, d_total = self.sum_and_count(pred, target, mask, gradient=True)
        if count == 0:
            return 0.0, d_total
        return total / count, d_total / d_total.dtype.type(count)

    @overload
    def sum_and_count(
        self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None, *, gradient: Literal[False] = False
    ) -> tuple[float, int]: ...
    @overload
    def sum_and_count(
        self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None, *, gradient: Literal[True]
    ) -> tuple[float, int, np.ndarray]: ...
    def sum_and_count(
        self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None, *, gradient: bool = False
    ) -> tuple[float, int] | tuple[float, int, np.ndarray]:
        """``(total, count)``, or ``(total, count, d_total)`` (gradient of the SUM) with
        gradient=True: the parts of the mean, to combine batches exactly."""
        total, count, d_total = self._evaluate(pred, target, mask, gradient)
        if not gradient:
            return total, count
        assert d_total is not None  # _evaluate returns the gradient when asked for it
        return total, count, d_total

    def _evaluate(
        self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None, gradient: bool
    ) -> tuple[float, int, np.ndarray | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanSquaredError(_Loss):
    """mean((pred - target)^2) over all (unmasked) elements; target has pred's shape."""

    name = "mse"

    def _evaluate(
        self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None, gradient: bool
    ) -> tuple[float, int, np.ndarray | None]:
        pred = _float_pred(pred)
        target = np.asarray(target)
        _same_shape(pred, target, "target")
        if target.dtype.kind not in "biuf":
            raise ValueError(f"expected numeric targets, got dtype {target.dtype}")
        error = pred - target.astype(pred.dtype, copy=False)
        keep = _element_mask(mask, pred.shape)
        if keep is not None:
            error = np.where(keep, error, 0).astype(pred.dtype, copy=False)
        count = pred.size if keep is None else int(keep.sum())
        total = float(np.sum(np.square(error, dtype=np.float64)))
        return total, count, (2 * error if gradient else None)


class CrossEntropy(_Loss):
    """Softmax cross-entropy of logits (..., C) against integer classes (...).

    Works for per-sequence classes (logits (B, C), targets (B,)) and per-step tokens
    (logits (B, T, C), targets (B, T)). Targets equal to ``ignore_index`` add nothing and
    are not counted. Computed as log-sum-exp around the row maximum, so any finite logits
    are safe.
    """

    name = "cross_entropy"

    def __init__(self, ignore_index: int | None = None) -> None:
        not_int = isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)
        if ignore_index is not None and not_int:
            raise TypeError(f"expected ignore_index as an int or None, got {type(ignore_index).__name__}")
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def __repr__(self) -> str:
        return f"CrossEntropy(ignore_index={self.ignore_index!r})"

    def _evaluate(
        self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None, gradient: bool
    ) -> tuple[float, int, np.ndarray | None]:
        logits = _float_pred(pred)
        target = np.asarray(target)
        if logits.ndim < 1 or target.shape != logits.shape[:-1]:
            raise ValueError(
                f"expected targets of shape {shape_text(logits.shape[:-1])} for logits of shape "
                f"{shape_text(logits.shape)}, got {shape_text(target.shape)}"
            )
        if target.dtype.kind not in "iu":
            raise ValueError(f"expected integer class targets, got dtype {target.dtype}")
        classes = logits.shape[-1]
        keep = np.ones(target.shape, bool) if mask is None else _element_mask(mask, target.shape).copy()
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        outside = keep & ((target < 0) | (target >= classes))
        if outside.any():
            bad = int(target[np.unravel_index(np.argmax(outside), target.shape)])
            raise ValueError(f"expected class targets in [0, {classes}), got {bad}")
        safe_target = np.where(keep, target, 0)[..., None]
        shifted = logits - logits.max(axis=-1, keepdims=True)
        exp = np.exp(shifted)
        sum_exp = exp.sum(axis=-1, keepdims=True)
        # -log softmax(target) = log(sum exp(shifted)) - shifted[target]
        losses = np.log(sum_exp) - np.take_along_axis(shifted, safe_target, axis=-1)
        total = float(np.sum(losses[..., 0], where=keep, dtype=np.float64))
        count = int(keep.sum())
        if not gradient:
            return total, count, None
        d_logits = exp / sum_exp
        np.put_along_axis(d_logits, safe_target, np.take_along_axis(d_logits, safe_target, axis=-1) - 1, axis=-1)
        d_logits = np.where(keep[..., None], d_logits, 0)  # where, not *: NaN in a masked row stays out
        return total, count, d_logits.astype(logits.dtype, copy=False)


class BinaryCrossEntropyWithLogits(_Loss):
    """Sigmoid cross-entropy of logits against targets in [0, 1] of the same shape.

    Per element max(z, 0) - z*y + log(1 + exp(-|z|)), which never overflows.
    """

    name = "bce_with_logits"

    def _evaluate(
        self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None, gradient: bool
    ) -> tuple[float, int, np.ndarray | None]:
        logits = _float_pred(pred)
        target = np.asarray(target)
        _same_shape(logits, target, "target")
        if target.dtype.kind not in "biuf":
            raise ValueError(f"expected numeric targets in [0, 1], got dtype {target.dtype}")
        target = target.astype(logits.dtype, copy=False)
        outside = ~((target >= 0) & (target <= 1))
        if outside.any():
            raise ValueError(f"expected targets in [0, 1], got {target[outside].flat[0]}")
        keep = _element_mask(mask, logits.shape)
        small = np.exp(-np.abs(logits))  # in (0, 1]: no overflow
        losses = np.maximum(logits, 0) - logits * target + np.log1p(small)
        total = float(np.sum(losses, where=True if keep is None else keep, dtype=np.float64))
        count = logits.size if keep is None else int(keep.sum())
        if not gradient:
            return total, count, None
        sigmoid = np.where(logits >= 0, 1 / (1 + small), small / (1 + small))
        d_logits = sigmoid - target
        if keep is not None:
            d_logits = np.where(keep, d_logits, 0)
        return total, count, d_logits.astype(logits.dtype, copy=False)


_BY_NAME = {
    MeanSquaredError.name: MeanSquaredError,
    CrossEntropy.name: CrossEntropy,
    BinaryCrossEntropyWithLogits.name: BinaryCrossEntropyWithLogits,
}


def get(name_or_loss: str | Callable[..., Any]) -> Callable[..., Any]:
    """A loss instance from its name ("mse", "cross_entropy", "bce_with_logits"), or the
    loss itself when given an object (any callable ``loss(pred, target, mask)``)."""
    if isinstance(name_or_loss, str):
        if name_or_loss not in _BY_NAME:
            raise ValueError(f"expected a loss name among {sorted(_BY_NAME)}, got {name_or_loss!r}")
        return _BY_NAME[name_or_loss]()
    if callable(name_or_loss):
        return name_or_loss
    raise TypeError(f"expected a loss name or a loss object, got {type(name_or_loss).__name__}")
