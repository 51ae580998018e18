"""Single-step cells (``LSTMCell``, ``GRUCell``, ``RNNCell``): PyTorch's ``nn.*Cell`` names and call
convention, a loop of cell steps equal to the one-layer layer over the sequence, gradients
by finite differences, conversions to and from layers, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore
from _compare import FD_ATOL, FD_RTOL, assert_close, numerical_gradient, sample_indices, scaled_atol
from _layers import move_off_initialisation
from _variants import dtypes

CELLS = pytest.mark.parametrize(
    "cell_class", [lstmcore.LSTMCell, lstmcore.GRUCell, lstmcore.RNNCell], ids=["lstm", "gru", "rnn"]
)
GATES = {lstmcore.LSTMCell: 4, lstmcore.GRUCell: 3, lstmcore.RNNCell: 1}
BIAS = pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def _is_lstm(cell):
    return isinstance(cell, lstmcore.LSTMCell)


def _random_state(cell, batch, rng):
    parts = [rng.normal(size=(batch, cell.hidden_size)).astype(cell.dtype) for _ in range(2 if _is_lstm(cell) else 1)]
    return tuple(parts) if _is_lstm(cell) else parts[0]


def _parts(state):
    return list(state) if isinstance(state, tuple) else [state]


@CELLS
@BIAS
def test_parameters_have_pytorchs_cell_names_and_shapes(cell_class, bias):
    cell = cell_class(3, 5, bias=bias)
    gates = GATES[cell_class]
    expected = {"weight_ih": (gates * 5, 3), "weight_hh": (gates * 5, 5)}
    if bias:
        expected.update(bias_ih=(gates * 5,), bias_hh=(gates * 5,))
    assert {name: value.shape for name, value in cell.params.items()} == expected
    assert {name: value.shape for name, value in cell.grads.items()} == expected
    assert all(np.abs(value).max() <= 1 / np.sqrt(5) for value in cell.params.values())


@CELLS
@BIAS
@dtypes
def test_a_loop_of_cell_steps_is_the_layer_over_the_sequence(cell_class, bias, dtype):
    cell = move_off_initialisation(cell_class(3, 5, bias=bias, dtype=dtype, seed=0), seed=1)
    layer = cell.to_layer()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 6, 3)).astype(dtype)
    state0 = _random_state(cell, 4, rng)
    dy = rng.normal(size=(4, 6, 5)).astype(dtype)
    # The layer, forward and backward.
    layer_state0 = tuple(p[None] for p in _parts(state0)) if _is_lstm(cell) else state0[None]
    y, _, tape = layer.forward(x, layer_state0)
    dx_layer, dstate0_layer = layer.backward(tape, dy)
    # The cell stepped over time, then backward step by step from the last.
    state, tapes, ys = state0, [], []
    for t in range(6):
        state, step_tape = cell.forward(x[:, t], state)
        tapes.append(step_tape)
        ys.append(_parts(state)[0])
    tol = TOLERANCE[dtype]
    assert_close("y", np.stack(ys, axis=1), y, tol, scaled_atol(tol, y))
    dstate = [np.zeros((4, 5), dtype) for _ in _parts(state0)]
    dxs = [None] * 6
    for t in reversed(range(6)):
        dstate[0] = dstate[0] + dy[:, t]
        dxs[t], d_before = cell.backward(tapes[t], tuple(dstate) if _is_lstm(cell) else dstate[0])
        dstate = _parts(d_before)
    assert_close("dx", np.stack(dxs, axis=1), dx_layer, tol, scaled_atol(tol, dx_layer))
    for got, expected in zip(dstate, _parts(dstate0_layer)):
        assert_close("dstate0", got, expected[0], tol, scaled_atol(tol, expected[0]))
    for name, grad in cell.grads.items():
        expected = layer.grads[name + "_l0"]
        assert_close(name, grad, expected, tol, scaled_atol(tol, expected))


@CELLS
@BIAS
def test_cell_gradients_match_finite_differences(cell_class, bias):
    cell = move_off_initialisation(cell_class(3, 5, bias=bias, dtype=np.float64, seed=3), seed=4)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3))
    state = _random_state(cell, 2, rng)
    dstate = _random_state(cell, 2, rng)

    def loss():
        return sum(float(np.sum(p * d)) for p, d in zip(_parts(cell(x, state)), _parts(dstate)))

    _, tape = cell.forward(x, state)
    cell.zero_grad()
    dx, dstate0 = cell.backward(tape, dstate)
    assert_close("dx", dx, numerical_gradient(loss, x), FD_RTOL, FD_ATOL)
    for index, (got, given) in enumerate(zip(_parts(dstate0), _parts(state))):
        assert_close(f"dstate0[{index}]", got, numerical_gradient(loss, given), FD_RTOL, FD_ATOL)
    for name, value in cell.params.items():
        indices = sample_indices(value.shape, 6, rng)
        sampled = np.full(value.shape, np.nan)
        for index in indices:
            sampled[index] = cell.grads[name][index]
        assert_close(name, sampled, numerical_gradient(loss, value, indices), FD_RTOL, FD_ATOL, equal_nan=True)


@CELLS
@BIAS
def test_cells_match_pytorchs(cell_class, bias):
    torch = pytest.importorskip("torch")
    cell = move_off_initialisation(cell_class(3, 5, bias=bias, dtype=np.float64, seed=6), seed=7)
    theirs = getattr(torch.nn, cell_class.__name__)(3, 5, bias=bias).double()
    assert sorted(name for name, _ in theirs.named_parameters()) == sorted(cell.params)
    theirs.load_state_dict({name: torch.from_numpy(value) for name, value in cell.params.items()})
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 3))
    state = _random_state(cell, 4, rng)
    dstate = _random_state(cell, 4, rng)
    new_state, tape = cell.forward(x, state)
    dx, dstate0 = cell.backward(tape, dstate)
    x_t = torch.from_numpy(x).requires_grad_()
    state_t = [torch.from_numpy(p.copy()).requires_grad_() for p in _parts(state)]
    out_t = theirs(x_t, tuple(state_t) if _is_lstm(cell) else state_t[0])
    out_t = list(out_t) if _is_lstm(cell) else [out_t]
    sum((o * torch.from_numpy(d)).sum() for o, d in zip(out_t, _parts(dstate))).backward()
    for got, expected in zip(_parts(new_state), out_t):
        assert_close("state", got, expected.detach().numpy(), 1e-12, 1e-12)
    assert_close("dx", dx, x_t.grad.numpy(), 1e-12, 1e-12)
    for got, expected in zip(_parts(dstate0), state_t):
        assert_close("dstate0", got, expected.grad.numpy(), 1e-12, 1e-12)
    for name, parameter in theirs.named_parameters():
        assert_close(name, cell.grads[name], parameter.grad.numpy(), 1e-10, 1e-10)


@CELLS
def test_a_cell_starts_from_zeros_and_reads_replaced_parameters(cell_class):
    cell = cell_class(3, 5, seed=0)
    x = np.random.default_rng(9).normal(size=(2, 3)).astype(np.float32)
    zeros = _random_state(cell, 2, np.random.default_rng(0))
    zeros = tuple(np.zeros_like(p) for p in _parts(zeros)) if _is_lstm(cell) else np.zeros_like(zeros)
    for got, expected in zip(_parts(cell(x)), _parts(cell(x, zeros))):
        np.testing.assert_array_equal(got, expected)
    before = _parts(cell(x))[0]
    cell.params["weight_ih"] = cell.params["weight_ih"] * 2  # replaced, not written in place
    assert not np.allclose(_parts(cell(x))[0], before)


@CELLS
@BIAS
def test_a_cell_and_its_layer_convert_both_ways(cell_class, bias):
    cell = cell_class(3, 5, bias=bias, seed=0)
    layer = cell.to_layer()
    assert type(layer) is cell_class._layer_class and (layer.num_layers, layer.bias) == (1, bias)
    back = cell_class.from_layer(layer)
    assert sorted(back.params) == sorted(cell.params)
    for name, value in cell.params.items():
        np.testing.assert_array_equal(back.params[name], value)
        assert back.params[name] is not value  # copies: the two train apart


def test_from_layer_refuses_what_a_cell_cannot_be():
    with pytest.raises(TypeError, match="expected a LSTM layer, got GRU"):
        lstmcore.LSTMCell.from_layer(lstmcore.GRU(3, 5))
    with pytest.raises(ValueError, match="expected num_layers=1"):
        lstmcore.LSTMCell.from_layer(lstmcore.LSTM(3, 5, 2))
    with pytest.raises(ValueError, match="bidirectional=True"):
        lstmcore.GRUCell.from_layer(lstmcore.GRU(3, 5, bidirectional=True))
    with pytest.raises(ValueError, match=r"no variant options; the layer sets \{'peephole': True\}"):
        lstmcore.LSTMCell.from_layer(lstmcore.LSTM(3, 5, peephole=True))


@CELLS
def test_bad_inputs_are_clear_errors(cell_class):
    cell = cell_class(3, 5)
    with pytest.raises(ValueError, match=r"expected x of shape \(B, 3\), got \(2, 4, 3\)"):
        cell(np.zeros((2, 4, 3)))
    bad = (np.zeros((2, 5)), np.zeros((2, 4))) if cell_class is lstmcore.LSTMCell else np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"expected state (h|c) of shape \(2, 5\) \(B, H\), got \(2, 4\)"):
        cell(np.zeros((2, 3)), bad)
    _, tape = cell.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="expected dstate"):
        cell.backward(tape, None)
    with pytest.raises(ValueError, match="a tape returned by this cell's forward"):
        cell_class(3, 5).backward(tape, bad)
    del cell.params["weight_hh"]
    with pytest.raises(ValueError, match=r"params keys do not match the cell: missing \['weight_hh'\]"):
        cell(np.zeros((2, 3)))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_an_rnn_cell_keeps_its_nonlinearity_and_matches_pytorchs(nonlinearity):
    torch = pytest.importorskip("torch")
    cell = move_off_initialisation(lstmcore.RNNCell(3, 5, nonlinearity=nonlinearity, dtype=np.float64, seed=1), seed=2)
    assert cell.to_layer().nonlinearity == nonlinearity
    assert lstmcore.RNNCell.from_layer(cell.to_layer()).nonlinearity == nonlinearity
    assert repr(cell) == f"RNNCell(3, 5, nonlinearity={nonlinearity!r}, dtype=float64)"
    theirs = torch.nn.RNNCell(3, 5, nonlinearity=nonlinearity).double()
    theirs.load_state_dict({name: torch.from_numpy(value) for name, value in cell.params.items()})
    x, h = np.random.default_rng(3).normal(size=(2, 4, 3)), np.random.default_rng(4).normal(size=(4, 5))
    expected = h
    for step in x:
        expected = theirs(
            torch.from_numpy(step), torch.from_numpy(expected) if isinstance(expected, np.ndarray) else expected
        )
    got = h
    for step in x:
        got = cell(step, got)
    assert_close("h", got, expected.detach().numpy(), 1e-12, 1e-12)
    with pytest.raises(ValueError, match=r"expected nonlinearity among sigmoid, tanh, relu, .*, got 'gelu'"):
        lstmcore.RNNCell(3, 5, nonlinearity="gelu")
