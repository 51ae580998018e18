"""Helpers shared by the tests: a comparison that says what failed, and finite differences."""

from __future__ import annotations

import numpy as np


def assert_close(name, got, expected, rtol, atol, equal_nan=False):
    """Assert |got - expected| <= atol + rtol * |expected| elementwise.

    NaN matches nothing, unless ``equal_nan`` and both sides are NaN there (used to mask
    entries that were not checked).

    On failure the message names the tensor, the worst element (largest error relative to
    its allowance), both values there, the error and how many elements fail.
    """
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{name}: shape {got.shape}, expected {expected.shape}"
    got64 = got.astype(np.float64)
    expected64 = expected.astype(np.float64)
    error = np.abs(got64 - expected64)
    allowed = atol + rtol * np.abs(expected64)
    fails = ~(error <= allowed)  # NaN on either side fails
    if equal_nan:
        fails &= ~(np.isnan(got64) & np.isnan(expected64))
    failing = int(np.count_nonzero(fails))
    if failing:
        # The worst element: the largest error relative to its allowance (NaN first).
        excess = np.where(fails, np.nan_to_num(error / np.maximum(allowed, np.finfo(float).tiny), nan=np.inf), 0)
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
        raise AssertionError(
            f"{name}: {failing} of {excess.size} elements differ; worst at index {tuple(int(k) for k in worst)}: "
            f"got {float(got64[worst])!r}, expected {float(expected64[worst])!r}, error {float(error[worst]):.3g} "
            f"> allowed {allowed[worst]:.3g} (rtol={rtol:g}, atol={atol:g})"
        )


def scaled_atol(tolerance, expected):
    """``tolerance`` times the tensor's scale (its largest magnitude, at least 1).

    Rounding errors of a sum scale with its terms, not with the result, so an element that
    cancels to near zero keeps an absolute error of the order of its tensor's scale.
    """
    return tolerance * max(1.0, float(np.max(np.abs(expected), initial=0.0)))


# Tolerances of a float64 gradient against numerical_gradient (eps = 1e-6): truncation
# error ~ eps^2 |f'''| ~ 1e-12 and rounding ~ 1e-16 * |loss| / eps ~ 1e-9 for losses of
# order 10, so these leave two orders of magnitude; a wrong term is off by O(0.1).
FD_RTOL, FD_ATOL = 1e-6, 1e-7


def numerical_gradient(loss, array, indices=None, eps=1e-6):
    """Central differences of ``loss()`` with respect to entries of ``array`` (changed in place, restored).

    indices: an iterable of index tuples into ``array`` (default: every entry). Returns an
    array shaped like ``array`` holding the estimates at ``indices`` (NaN elsewhere).
    """
    estimate = np.full(array.shape, np.nan)
    for index in np.ndindex(array.shape) if indices is None else indices:
        saved = array[index]
        array[index] = saved + eps
        plus = loss()
        array[index] = saved - eps
        minus = loss()
        array[index] = saved
        estimate[index] = (plus - minus) / (2 * eps)
    return estimate


def sample_indices(shape, count, rng):
    """``count`` distinct index tuples into an array of ``shape``, always with the first and last."""
    size = int(np.prod(shape))
    flat = {0, size - 1} | set(rng.choice(size, size=min(count, size), replace=False).tolist())
    return [np.unravel_index(k, shape) for k in sorted(flat)]
