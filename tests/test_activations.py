"""The core's sigmoid and tanh: their error against exact float64 math, and NaN/inf.

float32 uses Eigen's vectorized approximations; the bound asserted here (4e-7 absolute,
about 3.4 float32 ulp at 1) holds for every build: measured 2.6e-7 (tanh) and 1.5e-7
(sigmoid) with FMA (-march=native), 3.2e-7 and 1.7e-7 in a portable build without it.
float64 uses the C library.
"""

import numpy as np
import pytest

from _variants import dtypes
from lstmcore import _core

ABSOLUTE_BOUND = {np.float32: 4e-7, np.float64: 1e-15}


def exact_sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


@dtypes
@pytest.mark.parametrize("name, exact", [("gate_tanh", np.tanh), ("gate_sigmoid", exact_sigmoid)])
def test_activation_error_is_within_the_stated_bound(dtype, name, exact):
    # A dense grid over the range where the functions are not yet flat, plus the tails;
    # an odd length so the scalar tail after the SIMD packets is covered too.
    x = np.concatenate([np.linspace(-20, 20, 400_001), [-1e4, -88.0, 88.0, 1e4]]).astype(dtype)
    got = getattr(_core.diagnostics, name)(x).astype(np.float64)
    error = np.abs(got - exact(x.astype(np.float64)))
    worst = int(np.argmax(error))
    assert error[worst] <= ABSOLUTE_BOUND[dtype], f"{name} {dtype.__name__}: error {error[worst]:.3g} at x={x[worst]}"


@dtypes
def test_activations_keep_nan_and_saturate_at_infinity(dtype):
    x = np.array([np.nan, np.inf, -np.inf] * 7, dtype)  # 21 values: packets and a tail
    tanh, sigmoid = _core.diagnostics.gate_tanh(x), _core.diagnostics.gate_sigmoid(x)
    assert np.isnan(tanh[::3]).all() and np.isnan(sigmoid[::3]).all()
    assert (tanh[1::3] == 1).all() and (tanh[2::3] == -1).all()
    assert (sigmoid[1::3] == 1).all()
    # Eigen's float32 logistic returns a denormal (about 3e-39), not 0, at -inf.
    assert (np.abs(sigmoid[2::3]) < 1e-30).all()


@pytest.mark.parametrize("name", ["gate_tanh", "gate_sigmoid"])
def test_float32_value_does_not_depend_on_its_place_in_the_row(name):
    # A row's tail past the last full packet goes through narrower packets (16 -> 8 -> 4
    # lanes where the ISA has them) and only its last n % 4 values through the C library,
    # so a unit's gate is the same bit for bit wherever the split between threads puts it.
    x = np.random.default_rng(0).uniform(-6, 6, 32).astype(np.float32)
    full = getattr(_core.diagnostics, name)(x)
    for n in range(1, 33):
        vectorized = n - n % 4
        got = getattr(_core.diagnostics, name)(x[:n])
        np.testing.assert_array_equal(got[:vectorized], full[:vectorized], err_msg=f"n = {n}")
        np.testing.assert_allclose(got[vectorized:], full[vectorized:n], rtol=0, atol=ABSOLUTE_BOUND[np.float32])
