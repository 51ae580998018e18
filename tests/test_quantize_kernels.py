"""The core's reduced-precision products and LSTM forward against the NumPy model of the
same quantization (lstmcore.reference._reduced).

The products are compared exactly: int8 sums are exact integers and each bfloat16
product is exact in float32, so whichever kernel this build runs (AVX-512 VNNI and
AVX512_BF16, or the portable loops of a LSTMCORE_PORTABLE=ON build: CI runs this file on
both) must give the model's values bit for bit. The forward is compared on one step
(to the rounding of the activation functions) and on sequences (to the bound a flipped
rounding of a quantized activation can cause).
"""

from __future__ import annotations

import numpy as np
import pytest

from lstmcore import _core
from lstmcore.inference._quantization import from_bfloat16, quantize_int8, reduce_matrix, to_bfloat16
from lstmcore.reference import lstm_forward, reduced_lstm_forward, reduced_product

SHAPES = [(1, 1, 1), (1, 16, 7), (3, 17, 5), (4, 33, 64), (5, 64, 300), (9, 100, 129), (1, 1024, 256)]


def random_matrix(rng, rows, depth):
    w = rng.standard_normal((rows, depth)).astype(np.float32) * rng.uniform(0.01, 3.0, (rows, 1)).astype(np.float32)
    if rows > 2:
        w[1] = 0.0  # a row of zeros: scale 0
    return w


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
@pytest.mark.parametrize("rows,cols,depth", SHAPES)
def test_product_equals_the_numpy_model_exactly(precision, rows, cols, depth):
    rng = np.random.default_rng(rows * 1000 + cols + depth)
    w = random_matrix(rng, cols, depth)
    a = rng.standard_normal((rows, depth)).astype(np.float32) * rng.uniform(0.001, 10.0, (rows, 1)).astype(np.float32)
    if rows > 2:
        a[2] = 0.0
    values, scales = reduce_matrix(w, precision)
    matrix = _core.ReducedMatrix(precision, values, scales)
    assert matrix.shape == (cols, depth) and matrix.precision == precision
    assert matrix.kernel in ("avx512_vnni", "avx512_bf16", "portable")
    got = _core.reduced_product(matrix, a)
    expected = reduced_product(a, values, scales)
    np.testing.assert_array_equal(got, expected)
    # and the model is a product: close to the float32 one, by the precision's rounding
    exact = a.astype(np.float64) @ w.astype(np.float64).T
    scale = np.abs(a).sum(axis=1, keepdims=True) * np.abs(w).max()
    assert np.all(np.abs(got - exact) <= (0.02 if precision == "int8" else 0.01) * scale + 1e-6)


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_a_row_holding_nan_or_inf_gives_nan_products_and_leaves_other_rows_alone(precision):
    rng = np.random.default_rng(1)
    w = random_matrix(rng, 20, 40)
    a = rng.standard_normal((3, 40)).astype(np.float32)
    a[1, 5] = np.nan
    matrix = _core.ReducedMatrix(precision, *reduce_matrix(w, precision))
    got = _core.reduced_product(matrix, a)
    assert np.isnan(got[1]).all()
    np.testing.assert_array_equal(got[[0, 2]], reduced_product(a[[0, 2]], *reduce_matrix(w, precision)))


def test_int8_weights_round_each_row_to_its_own_scale():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.0, -0.004]], np.float32)
    q, scale = quantize_int8(w)
    np.testing.assert_array_equal(scale, np.float32([1.0 / 127, 0.0, 3.0 / 127]))
    np.testing.assert_array_equal(q, [[64, -127, 32], [0, 0, 0], [127, 42, 0]])  # 63.5 -> 64 (even)
    assert q.dtype == np.int8


def test_bfloat16_rounds_to_nearest_even_and_keeps_nan():
    values = np.array([1.0, 1.00390625, 1.01171875, -2.5, np.inf, np.nan, np.finfo(np.float32).max], np.float32)
    bits = to_bfloat16(values)
    back = from_bfloat16(bits)
    # 1 + 2**-8 is halfway between 1 and 1 + 2**-7: ties to even (1); 1 + 3 * 2**-8 to 1 + 2**-6
    np.testing.assert_array_equal(back[:4], np.float32([1.0, 1.0, 1.015625, -2.5]))
    assert back[4] == np.inf and np.isnan(back[5]) and np.isinf(back[6])  # past bfloat16's largest


def test_matrices_refuse_bad_input_with_the_expected_and_the_given():
    q = np.zeros((4, 3), np.int8)
    with pytest.raises(ValueError, match="precision 'int8' or 'bfloat16', got 'int4'"):
        _core.ReducedMatrix("int4", q, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="needs its row scales"):
        _core.ReducedMatrix("int8", q)
    with pytest.raises(ValueError, match="scales"):
        _core.ReducedMatrix("int8", q, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="values"):
        _core.ReducedMatrix("int8", q.astype(np.int16), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="takes no scales"):
        _core.ReducedMatrix("bfloat16", q.view(np.uint8).astype(np.uint16), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="rank 2"):
        _core.ReducedMatrix("bfloat16", np.zeros(3, np.uint16))
    with pytest.raises(ValueError, match="at most 65535 columns"):
        _core.ReducedMatrix("bfloat16", np.zeros((1, 70000), np.uint16))


def _forward_both(precision, steps, batch=3, input_size=10, hidden=24, seed=0):
    rng = np.random.default_rng(seed)
    w_ih = rng.standard_normal((4 * hidden, input_size)).astype(np.float32) * 0.4
    w_hh = rng.standard_normal((4 * hidden, hidden)).astype(np.float32) * 0.3
    b_ih, b_hh = (rng.standard_normal(4 * hidden).astype(np.float32) * 0.1 for _ in range(2))
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    h0 = rng.uniform(-0.9, 0.9, (batch, hidden)).astype(np.float32)
    c0 = rng.standard_normal((batch, hidden)).astype(np.float32)
    reduced_ih, reduced_hh = reduce_matrix(w_ih, precision), reduce_matrix(w_hh, precision)
    weights = _core.ReducedLstmWeights(
        _core.ReducedMatrix(precision, *reduced_ih), _core.ReducedMatrix(precision, *reduced_hh), b_ih, b_hh
    )
    y = np.empty((steps, batch, hidden), np.float32)
    c_n = _core.reduced_lstm_forward(x, weights, h0, c0, y, _core.PassOptions(), _core.LstmOptions()).c_n
    y_model, c_model = reduced_lstm_forward(x, reduced_ih, reduced_hh, b_ih, b_hh, h0, c0)
    y_float = lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0)[0]
    return y, c_n, y_model, c_model, y_float


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_one_lstm_step_matches_the_numpy_model_to_the_activation_functions_rounding(precision):
    y, c_n, y_model, c_model, _ = _forward_both(precision, steps=1)
    np.testing.assert_allclose(y, y_model, rtol=0, atol=1e-6)
    np.testing.assert_allclose(c_n, c_model, rtol=0, atol=1e-6)


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_lstm_sequences_match_the_numpy_model_and_stay_near_float32(precision):
    y, c_n, y_model, c_model, y_float = _forward_both(precision, steps=30, seed=5)
    # A last-bit difference of h_t (the activation functions) can move one quantized
    # value of h_t by one step, max|h| / 127 in int8, which moves the next gates by at
    # most that times a row of W_hh: far below the quantization's own error.
    bound = 2e-3 if precision == "int8" else 2e-5
    np.testing.assert_allclose(y, y_model, rtol=0, atol=bound)
    np.testing.assert_allclose(c_n, c_model, rtol=0, atol=5 * bound)
    assert np.mean(np.abs(y - y_model) <= 1e-5) >= 0.99  # such flips are rare
    error = np.abs(y - y_float)  # measured: int8 0.012-0.018 max, 0.0014 mean; bfloat16 0.007, 0.0005
    assert error.max() < (0.03 if precision == "int8" else 0.012)
    assert error.mean() < (0.003 if precision == "int8" else 0.001)


def test_the_reduced_forward_refuses_a_tape_and_mismatched_shapes():
    rng = np.random.default_rng(0)
    make = lambda rows, depth: _core.ReducedMatrix("int8", *quantize_int8(rng.standard_normal((rows, depth))))  # noqa: E731
    bias = np.zeros(16, np.float32)
    weights = _core.ReducedLstmWeights(make(16, 3), make(16, 4), bias, bias)
    x, h = np.zeros((2, 1, 3), np.float32), np.zeros((1, 4), np.float32)
    y = np.zeros((2, 1, 4), np.float32)
    with pytest.raises(ValueError, match="keeps no tape"):
        _core.reduced_lstm_forward(x, weights, h, h, y, _core.PassOptions(), _core.LstmOptions(), True)
    x5 = np.zeros((2, 1, 5), np.float32)
    with pytest.raises(ValueError, match=r"expected weight_ih of shape \(16, 5\), got \(16, 3\)"):
        _core.reduced_lstm_forward(x5, weights, h, h, y, _core.PassOptions(), _core.LstmOptions())
    with pytest.raises(ValueError, match="x"):
        _core.reduced_lstm_forward(x.astype(np.float64), weights, h, h, y, _core.PassOptions(), _core.LstmOptions())
    bad = _core.ReducedLstmWeights(make(16, 3), make(12, 4), bias, bias)
    with pytest.raises(ValueError, match=r"weight_hh of shape \(4 \* H, H\)"):
        _core.reduced_lstm_forward(x, bad, h, h, y, _core.PassOptions(), _core.LstmOptions())
