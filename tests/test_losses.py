"""Losses against plain NumPy formulas, at extreme logits, with masks and ignore_index, and
their gradients against central finite differences."""

import numpy as np
import pytest

from _compare import assert_close, numerical_gradient
from _variants import dtypes
from lstmcore import losses

RNG = np.random.default_rng(0)


def finite_difference_check(loss, pred, target, mask=None):
    _, d_pred = loss(pred, target, mask)
    estimate = numerical_gradient(lambda: loss(pred, target, mask)[0], pred)
    assert_close("d_pred", d_pred, estimate, rtol=1e-6, atol=1e-9)


def plain_log_softmax(logits):
    return logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))


# ----------------------------------------------------------------------- MSE


def test_mse_matches_the_formula_and_finite_differences():
    pred, target = RNG.normal(size=(3, 4, 2)), RNG.normal(size=(3, 4, 2))
    value, d_pred = losses.MeanSquaredError()(pred, target)
    assert value == pytest.approx(np.mean((pred - target) ** 2), rel=1e-12)
    assert_close("d_pred", d_pred, 2 * (pred - target) / pred.size, rtol=1e-12, atol=0)
    finite_difference_check(losses.MeanSquaredError(), pred, target)


def test_mse_mask_on_leading_axes_excludes_padding_steps():
    pred, target = RNG.normal(size=(2, 3, 2)), RNG.normal(size=(2, 3, 2))
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    target[~mask] = np.nan  # padding may hold anything
    value, d_pred = losses.MeanSquaredError()(pred, target, mask)
    assert value == pytest.approx(np.mean((pred[mask] - target[mask]) ** 2), rel=1e-12)
    assert not d_pred[~mask].any() and np.isfinite(d_pred).all()


# ----------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)], ids=["per-sequence", "per-step"])
def test_cross_entropy_matches_the_formula_and_finite_differences(shape):
    logits = RNG.normal(size=shape) * 3
    target = RNG.integers(0, shape[-1], size=shape[:-1])
    value, _ = losses.CrossEntropy()(logits, target)
    picked = np.take_along_axis(plain_log_softmax(logits), target[..., None], axis=-1)
    assert value == pytest.approx(-np.mean(picked), rel=1e-12)
    finite_difference_check(losses.CrossEntropy(), logits, target)


@dtypes
def test_cross_entropy_is_finite_at_extreme_logits(dtype):
    logits = np.array([[1000.0, -1000.0, 0.0], [1000.0, -1000.0, 0.0]], dtype)
    value, d_logits = losses.CrossEntropy()(logits, np.array([0, 1]))
    assert value == pytest.approx(1000.0, rel=1e-6)  # (0 + 2000) / 2
    assert d_logits.dtype == dtype and np.isfinite(d_logits).all()
    assert_close("d_logits", d_logits, np.array([[0, 0, 0], [0.5, -0.5, 0]]), rtol=0, atol=1e-6)


def test_cross_entropy_ignore_index_adds_nothing_and_is_not_counted():
    logits = RNG.normal(size=(2, 3, 5))
    target = np.array([[1, -100, 4], [-100, 0, 2]])
    value, d_logits = losses.CrossEntropy(ignore_index=-100)(logits, target)
    kept = target != -100
    picked = np.take_along_axis(plain_log_softmax(logits[kept]), target[kept][:, None], axis=-1)
    assert value == pytest.approx(-np.mean(picked), rel=1e-12)
    assert not d_logits[~kept].any()
    finite_difference_check(losses.CrossEntropy(ignore_index=-100), logits, target)


def test_cross_entropy_with_everything_ignored_is_zero_without_nan():
    logits = np.full((2, 3), np.nan)
    value, d_logits = losses.CrossEntropy(ignore_index=0)(logits, np.zeros(2, int))
    assert value == 0.0 and not d_logits.any()
    value, d_logits = losses.CrossEntropy()(RNG.normal(size=(2, 3)), np.array([1, 2]), mask=np.zeros(2, bool))
    assert value == 0.0 and not d_logits.any()


def test_cross_entropy_rejects_bad_targets():
    logits = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, 3\).*\(4, 2\)"):
        losses.CrossEntropy()(logits, np.zeros((4, 2), int))
    with pytest.raises(ValueError, match="integer class targets"):
        losses.CrossEntropy()(logits, np.zeros(4))
    with pytest.raises(ValueError, match=r"\[0, 3\).*3"):
        losses.CrossEntropy()(logits, np.array([0, 1, 2, 3]))


# ----------------------------------------------------------------------- binary cross-entropy


def test_bce_with_logits_matches_the_formula_and_finite_differences():
    logits, target = RNG.normal(size=(4, 3)) * 2, RNG.uniform(size=(4, 3))
    value, _ = losses.BinaryCrossEntropyWithLogits()(logits, target)
    p = 1 / (1 + np.exp(-logits))
    assert value == pytest.approx(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)), rel=1e-12)
    finite_difference_check(losses.BinaryCrossEntropyWithLogits(), logits, target)


@dtypes
def test_bce_with_logits_is_finite_at_extreme_logits(dtype):
    logits = np.array([1000.0, -1000.0, 1000.0, -1000.0], dtype)
    target = np.array([1.0, 0.0, 0.0, 1.0], dtype)
    value, d_logits = losses.BinaryCrossEntropyWithLogits()(logits, target)
    assert value == pytest.approx(500.0, rel=1e-6)  # (0 + 0 + 1000 + 1000) / 4
    assert_close("d_logits", d_logits, np.array([0, 0, 0.25, -0.25]), rtol=0, atol=1e-7)


def test_bce_rejects_targets_outside_zero_one_and_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.BinaryCrossEntropyWithLogits()(np.zeros(2), np.array([0.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3,\)"):
        losses.BinaryCrossEntropyWithLogits()(np.zeros((3, 1)), np.zeros(3))


# ----------------------------------------------------------------------- lookup and sums


def test_get_maps_names_and_passes_objects_through():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("cross_entropy"), losses.CrossEntropy)
    assert isinstance(losses.get("bce_with_logits"), losses.BinaryCrossEntropyWithLogits)
    mine = losses.CrossEntropy(ignore_index=0)
    assert losses.get(mine) is mine
    with pytest.raises(ValueError, match="'mse'"):
        losses.get("l2")


def test_sum_and_count_combine_batches_exactly():
    logits = RNG.normal(size=(6, 4))
    target = np.array([0, 1, 2, 3, 0, 1])
    loss = losses.CrossEntropy(ignore_index=1)
    parts = [loss.sum_and_count(logits[s], target[s]) for s in (slice(0, 2), slice(2, 6))]
    total = sum(p[0] for p in parts) / sum(p[1] for p in parts)
    assert total == pytest.approx(loss(logits, target)[0], rel=1e-12)
    assert sum(p[1] for p in parts) == 4
