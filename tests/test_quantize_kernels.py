"""The core's reduced-precision products and LSTM forward against the NumPy model of the
same quantization (lstmcore.reference._reduced).

The products are compared exactly: int8 sums are exact integers and each bfloat16
product is exact in float32, so whichever kernel this build runs (AMX tiles, AVX-512 VNNI
and AVX512_BF16, AVX2 and FMA, or the portable loops of a LSTMCORE_PORTABLE=ON build: CI
runs this file on both builds, and each test with AMX allowed and not) must give the model's values bit
for bit; except AMX's bfloat16 tiles, which add a tile's exact products in an order of
their own, held to the bound of float32 summation instead. The forward is compared on one step
(to the rounding of the activation functions) and on sequences (to the bound a flipped
rounding of a quantized activation can cause).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import lstmcore
from lstmcore import _core
from lstmcore.inference._quantization import from_bfloat16, quantize_int8, reduce_matrix, to_bfloat16
from lstmcore.reference import (
    gru_forward,
    lstm_forward,
    reduced_gru_forward,
    reduced_lstm_forward,
    reduced_product,
    reduced_rnn_forward,
    vanilla_rnn_forward,
)
from lstmcore.reference._reduced import bfloat16_values

SHAPES = [
    (1, 1, 1),
    (1, 16, 7),
    (1, 20, 3),  # one row against two and three panels at once (AVX2 takes four)
    (1, 40, 9),
    (2, 29, 13),  # 29 and 61 columns: a panel's second half of 8 lanes part-filled
    (1, 61, 6),
    (3, 17, 5),
    (4, 33, 64),
    (5, 64, 300),
    (9, 100, 129),
    (1, 1024, 256),
    (16, 16, 64),  # AMX from here: whole tiles, and ragged ones; AVX2's bfloat16 on float32's tiles from 12
    (17, 33, 70),
    (40, 1024, 256),
    (100, 48, 1030),
    (12, 24, 33),  # tiles of 6 + 6, a last panel of 8 columns, an odd depth
    (13, 41, 257),  # tiles of 5 + 4 + 4, a last panel of 9 columns, an odd depth past 256
    (19, 31, 7),  # tiles of 5 + 5 + 5 + 4, a last panel of 15 columns
    (197, 20, 9),  # blocks of 99 and 98 rows (reduced_bf16_tiles.hpp)
]


@pytest.fixture(params=["amx allowed", "amx not allowed"], autouse=True)
def amx(request):
    """Each test with AMX allowed (where the CPU and the build have it) and without."""
    _core.diagnostics.allow_amx(request.param == "amx allowed")
    yield request.param
    _core.diagnostics.allow_amx(True)


def test_avx2_builds_run_many_bfloat16_rows_on_float32_tiles():
    built = set(_core.diagnostics.built_for())
    # AVX-512 builds keep their own kernels, whose float32 panels are 32 columns wide.
    on_tiles = {"avx2", "fma"} <= built and "avx512f" not in built
    assert _core.diagnostics.bfloat16_tile_rows == (12 if on_tiles else 0)


def expected_kernels(precision):
    """The kernels a build for its instruction sets runs (-march=native: those the CPU
    has; LSTMCORE_PORTABLE=ON: none), so that a build that fell back to the portable
    loops where it has SIMD ones fails. (Whether AMX is in use as well depends on the
    kernel granting it: test_a_machine_with_amx_runs_its_products_there.)"""
    built = set(_core.diagnostics.built_for())
    amx = "amx" in built
    if precision == "int8" and {"avx512_vnni", "avx512bw"} <= built:
        return {"avx512_vnni"} | ({"amx+avx512_vnni"} if amx else set())
    if precision == "bfloat16" and {"avx512_bf16", "avx512bw"} <= built:
        return {"avx512_bf16"} | ({"amx_bf16"} if amx else set())
    return {"avx2"} if {"avx2", "fma"} <= built else {"portable"}


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
    assert matrix.kernel in expected_kernels(precision)
    got = _core.reduced_product(matrix, a)
    expected = reduced_product(a, values, scales)
    if matrix.kernel == "amx_bf16":
        # Two float32 sums of the same exact products, each within depth * 2**-24 of
        # sum |a_k w_k| of the exact one.
        a16, w16 = bfloat16_values(a).astype(np.float64), bfloat16_values(w).astype(np.float64)
        bound = 2 * depth * 2.0**-24 * (np.abs(a16) @ np.abs(w16).T)
        assert np.all(np.abs(got - expected) <= bound)
        assert np.abs(got - a16 @ w16.T).max() <= np.abs(expected - a16 @ w16.T).max() * 4
    else:
        np.testing.assert_array_equal(got, expected)
    # and the model is a product: close to the float32 one, by the precision's rounding
    exact = a.astype(np.float64) @ w.astype(np.float64).T
    scale = np.abs(a).sum(axis=1, keepdims=True) * np.abs(w).max()
    assert np.all(np.abs(got - exact) <= (0.02 if precision == "int8" else 0.01) * scale + 1e-6)


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
@pytest.mark.parametrize("rows", [1, 20])
def test_a_product_of_no_depth_is_zeros(precision, rows):
    no_depth = (np.zeros((5, 0), np.int8), np.ones(5, np.float32)) if precision == "int8" else (np.zeros((5, 0), np.uint16),)
    matrix = _core.ReducedMatrix(precision, *no_depth)
    for _ in range(3):  # leave non-zero memory where the output is likely to be allocated
        junk = np.full((rows, 5), 7.0, np.float32)
        del junk
    np.testing.assert_array_equal(_core.reduced_product(matrix, np.ones((rows, 0), np.float32)), np.zeros((rows, 5)))


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_a_row_holding_nan_or_inf_gives_nan_products_and_leaves_other_rows_alone(precision):
    rng = np.random.default_rng(1)
    w = random_matrix(rng, 20, 40)
    a = rng.standard_normal((3, 40)).astype(np.float32)
    a[1, 5] = np.nan
    matrix = _core.ReducedMatrix(precision, *reduce_matrix(w, precision))
    got = _core.reduced_product(matrix, a)
    assert np.isnan(got[1]).all()
    np.testing.assert_allclose(got[[0, 2]], reduced_product(a[[0, 2]], *reduce_matrix(w, precision)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_rows_of_tiny_and_subnormal_values_stay_tiny(precision):
    # Below about 4e-37, 127 / max|a| overflows: such rows are q = 0 (int8), not garbage.
    w = np.ones((16, 20), np.float32)
    a = np.zeros((4, 20), np.float32)
    a[0, 0], a[1, :3] = 1e-38, [1e-38, 0, -5e-39]
    a[2, 5], a[3, 7] = 1e-45, 3e-37  # a subnormal; and one just above the limit
    values, scales = reduce_matrix(w, precision)
    got = _core.reduced_product(_core.ReducedMatrix(precision, values, scales), a)
    # AVX512_BF16 and AMX flush subnormal values (below 1.2e-38) to zero; the model keeps them.
    np.testing.assert_allclose(got, reduced_product(a, values, scales), rtol=1e-6, atol=0 if precision == "int8" else 1e-36)
    assert np.all(np.abs(got) <= np.abs(a).sum(axis=1, keepdims=True) * 1.01)
    q, row_scales = quantize_int8(np.float32([[1e-38, 0, -5e-39], [1.0, 0.0, -0.5]]))
    np.testing.assert_array_equal(q[0], [0, 0, 0])
    assert row_scales[0] == 0 and row_scales[1] == np.float32(1 / 127)


def test_bfloat16_products_that_underflow_or_overflow_round_as_the_kernel_says():
    """The portable loop rounds each product, then adds it, odd element first, as the
    model does; the AVX2 kernel's FMAs round a product that underflows or overflows
    float32 together with its sum (docs/inference.md): here 2**-149 + 2**-150, and
    -3e38 + 2**128, which the model rounds to 2**-149 and inf."""
    w = np.float32([[2.0**-75, 2.0**-74], [2.0**64, 1.0]])
    a = np.float32([[2.0**-75, 2.0**-75], [2.0**64, -3e38]])
    matrix = _core.ReducedMatrix("bfloat16", to_bfloat16(w))
    if matrix.kernel not in ("avx2", "portable"):
        pytest.skip(f"{matrix.kernel} flushes subnormal products (docs/inference.md): the AVX2 and portable paths only")
    got = _core.reduced_product(matrix, a)
    with np.errstate(over="ignore"):  # the model's 2**64 * 2**64
        expected = reduced_product(a, to_bfloat16(w), None)
    assert expected[0, 0] == np.float32(2.0**-149) and expected[1, 1] == np.inf
    if matrix.kernel == "avx2":
        minus_3e38 = float(from_bfloat16(to_bfloat16(np.float32([-3e38])))[0])
        expected[0, 0], expected[1, 1] = 2.0**-148, np.float32(minus_3e38 + 2.0**128)  # one rounding each
    np.testing.assert_array_equal(got, expected)
    # From two tiles of rows on, AVX2 takes float32's tiles (reduced_bf16_tiles.hpp): the same FMAs.
    np.testing.assert_array_equal(_core.reduced_product(matrix, np.tile(a, (7, 1))), np.tile(expected, (7, 1)))


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
    low = q.copy()
    low[2, 1] = -128  # outside the quantizer's range, and one the AVX2 kernel cannot negate
    with pytest.raises(ValueError, match=r"int8 values in \[-127, 127\], got -128 at \(2, 1\)"):
        _core.ReducedMatrix("int8", low, np.ones(4, np.float32))


GATES = {"lstm": 4, "lstm-projected": 4, "gru": 3, "rnn-tanh": 1, "rnn-relu": 1}
PROJECTION = 7


def _forward_both(kind, precision, steps, batch=3, input_size=10, hidden=24, seed=0):
    """The core's reduced forward, the NumPy model's, and float32's (the reference's) of
    one random layer-direction: (y, y_model, y_float)."""
    rng = np.random.default_rng(seed)
    rows = GATES[kind] * hidden
    width = PROJECTION if kind == "lstm-projected" else hidden  # of the state h
    w_ih = rng.standard_normal((rows, input_size)).astype(np.float32) * 0.4
    # RNN: a smaller W_hh (spectral radius below 1), so that its relu does not blow up
    w_hh = rng.standard_normal((rows, width)).astype(np.float32) * (0.12 if kind.startswith("rnn") else 0.3)
    b_ih, b_hh = (rng.standard_normal(rows).astype(np.float32) * 0.1 for _ in range(2))
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    h0 = rng.uniform(-0.9, 0.9, (batch, width)).astype(np.float32)
    c0 = rng.standard_normal((batch, hidden)).astype(np.float32)
    w_hr = rng.standard_normal((PROJECTION, hidden)).astype(np.float32) * 0.3
    reduced_ih, reduced_hh = reduce_matrix(w_ih, precision), reduce_matrix(w_hh, precision)
    weights = _core.ReducedWeights(
        _core.ReducedMatrix(precision, *reduced_ih), _core.ReducedMatrix(precision, *reduced_hh), b_ih, b_hh
    )
    y = np.empty((steps, batch, width), np.float32)
    pass_options = _core.PassOptions()
    float_weights = (w_ih, w_hh, b_ih, b_hh)
    if kind == "lstm-projected":
        reduced_hr = reduce_matrix(w_hr, precision)
        weights = _core.ReducedWeights(
            weights.weight_ih, weights.weight_hh, b_ih, b_hh, weight_hr=_core.ReducedMatrix(precision, *reduced_hr)
        )
        c_n = _core.reduced_projected_lstm_forward(x, weights, h0, c0, y, pass_options, _core.LstmOptions()).c_n
        y_model, c_model = reduced_lstm_forward(x, reduced_ih, reduced_hh, b_ih, b_hh, h0, c0, reduced_hr)
        np.testing.assert_allclose(c_n, c_model, rtol=0, atol=1e-6 if steps == 1 else 1e-2)
        return y, y_model, lstm_forward(x, *float_weights, h0, c0, weight_hr=w_hr)[0]
    if kind == "lstm":
        c_n = _core.reduced_lstm_forward(x, weights, h0, c0, y, pass_options, _core.LstmOptions()).c_n
        y_model, c_model = reduced_lstm_forward(x, reduced_ih, reduced_hh, b_ih, b_hh, h0, c0)
        np.testing.assert_allclose(c_n, c_model, rtol=0, atol=1e-6 if steps == 1 else 1e-2)
        return y, y_model, lstm_forward(x, *float_weights, h0, c0)[0]
    if kind == "gru":
        _core.reduced_gru_forward(x, weights, h0, y, pass_options)
        return y, reduced_gru_forward(x, reduced_ih, reduced_hh, b_ih, b_hh, h0), gru_forward(x, *float_weights, h0)[0]
    nonlinearity = kind.removeprefix("rnn-")
    _core.reduced_rnn_forward(x, weights, h0, y, pass_options, nonlinearity)
    y_model = reduced_rnn_forward(x, reduced_ih, reduced_hh, b_ih, b_hh, h0, nonlinearity)
    return y, y_model, vanilla_rnn_forward(x, *float_weights, h0, nonlinearity=nonlinearity)[0]


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
@pytest.mark.parametrize("kind", GATES)
def test_one_step_matches_the_numpy_model_to_the_activation_functions_rounding(kind, precision):
    y, y_model, _ = _forward_both(kind, precision, steps=1)
    np.testing.assert_allclose(y, y_model, rtol=0, atol=1e-6)


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
@pytest.mark.parametrize("kind", GATES)
def test_sequences_match_the_numpy_model_and_stay_near_float32(kind, precision):
    y, y_model, y_float = _forward_both(kind, precision, steps=30, seed=5)
    # A last-bit difference of h_t (the activation functions) can move one quantized
    # value of h_t by one step (max|h| / 127 in int8, a bfloat16 ulp), which moves the
    # next gates by at most that times a row of W_hh: below the quantization's own
    # error, and rare.
    np.testing.assert_allclose(y, y_model, rtol=0, atol=2e-3)
    assert np.mean(np.abs(y - y_model) <= 1e-5) >= 0.99
    most, mean = FLOAT32_BOUNDS[kind][precision]
    error = np.abs(y - y_float)
    assert error.max() < most and error.mean() < mean


# Max and mean |reduced - float32| of these layers' outputs, bound at about twice what
# seeds 0-3 gave: int8 LSTM 0.018 and 0.0015, GRU 0.026 and 0.0031, RNN tanh 0.040 and
# 0.0034, relu 0.045 and 0.0039 (|y| up to 7); bfloat16 about a third to a half of those.
FLOAT32_BOUNDS = {
    "lstm": {"int8": (0.03, 0.003), "bfloat16": (0.012, 0.001)},
    "lstm-projected": {"int8": (0.03, 0.003), "bfloat16": (0.012, 0.001)},
    "gru": {"int8": (0.05, 0.006), "bfloat16": (0.03, 0.0025)},
    "rnn-tanh": {"int8": (0.08, 0.007), "bfloat16": (0.03, 0.0025)},
    "rnn-relu": {"int8": (0.09, 0.008), "bfloat16": (0.04, 0.003)},
}


def test_the_reduced_forward_refuses_a_tape_and_mismatched_shapes():
    rng = np.random.default_rng(0)
    make = lambda rows, depth: _core.ReducedMatrix("int8", *quantize_int8(rng.standard_normal((rows, depth))))  # noqa: E731
    bias = np.zeros(16, np.float32)
    weights = _core.ReducedWeights(make(16, 3), make(16, 4), bias, bias)
    x, h = np.zeros((2, 1, 3), np.float32), np.zeros((1, 4), np.float32)
    y = np.zeros((2, 1, 4), np.float32)
    with pytest.raises(ValueError, match="keeps no tape"):
        _core.reduced_lstm_forward(x, weights, h, h, y, _core.PassOptions(), _core.LstmOptions(), True)
    x5 = np.zeros((2, 1, 5), np.float32)
    with pytest.raises(ValueError, match=r"expected weight_ih of shape \(16, 5\), got \(16, 3\)"):
        _core.reduced_lstm_forward(x5, weights, h, h, y, _core.PassOptions(), _core.LstmOptions())
    with pytest.raises(ValueError, match="x"):
        _core.reduced_lstm_forward(x.astype(np.float64), weights, h, h, y, _core.PassOptions(), _core.LstmOptions())
    bad = _core.ReducedWeights(make(16, 3), make(12, 4), bias, bias)
    with pytest.raises(ValueError, match=r"weight_hh of shape \(4 \* H, H\)"):
        _core.reduced_lstm_forward(x, bad, h, h, y, _core.PassOptions(), _core.LstmOptions())
    gru = _core.ReducedWeights(make(12, 3), make(12, 4), bias[:12], bias[:12])
    with pytest.raises(ValueError, match="reset gate after W_hn only"):
        _core.reduced_gru_forward(x, gru, h, y, _core.PassOptions(), reset_after=False)
    with pytest.raises(ValueError, match="sigmoid and tanh only"):
        _core.reduced_gru_forward(x, gru, h, y, _core.PassOptions(), clip=1.0)
    rnn = _core.ReducedWeights(make(4, 3), make(4, 4), bias[:4], bias[:4])
    with pytest.raises(ValueError, match="'tanh' or 'relu' only"):
        _core.reduced_rnn_forward(x, rnn, h, y, _core.PassOptions(), "softsign")
    with pytest.raises(ValueError, match="keeps no tape"):
        _core.reduced_rnn_forward(x, rnn, h, y, _core.PassOptions(), "tanh", True)


def test_a_machine_with_amx_runs_its_products_there():
    """Where the CPU has AMX and the build targets it, the products run on it (not a
    silent fallback); a portable build runs the portable loops."""
    _core.diagnostics.allow_amx(True)
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""  # noqa: SIM115
    matrix = _core.ReducedMatrix("int8", *quantize_int8(np.ones((4, 4), np.float32)))
    allowed = os.environ.get("LSTMCORE_AMX") != "0"
    if allowed and matrix.kernel != "portable" and " amx_int8" in flags and " amx_bf16" in flags:
        assert matrix.kernel == "amx+avx512_vnni"
        assert _core.ReducedMatrix("bfloat16", to_bfloat16(np.ones((4, 4), np.float32))).kernel == "amx_bf16"


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_int8_layers_give_the_same_bits_on_amx_and_on_avx512(kind):
    layer = (lstmcore.LSTM if kind == "lstm" else lstmcore.GRU)(12, 40, seed=0)
    x = np.random.default_rng(0).standard_normal((40, 9, 12)).astype(np.float32)
    quantized = lstmcore.quantize(layer, "int8")
    _core.diagnostics.allow_amx(True)
    on_amx, _ = quantized(x)
    _core.diagnostics.allow_amx(False)
    on_avx512, _ = quantized(x)
    np.testing.assert_array_equal(on_amx, on_avx512)
