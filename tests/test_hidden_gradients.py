"""``lstmcore.inspect.hidden_gradients``: dL/dh_t at every step of an LSTM, GRU and RNN.

Checked in float64 against central differences of the loss with respect to the hidden
state carried out of step t, taken by running the steps up to t and the steps after it
separately and adding eps to h_t in between (tolerances FD_RTOL, FD_ATOL of _compare);
and against its definition at the last step, where only dy_{T-1} (and dstate) reach h.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore
from _compare import FD_ATOL, FD_RTOL, assert_close, numerical_gradient
from lstmcore.inspect import hidden_gradients

KINDS = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU, "rnn": lstmcore.RNN}
BATCH, STEPS, INPUTS, HIDDEN = 2, 6, 3, 4


def _layer_and_data(kind, batch_first=True, seed=0):
    rng = np.random.default_rng(seed)
    layer = KINDS[kind](INPUTS, HIDDEN, batch_first=batch_first, dtype=np.float64, seed=seed)
    shape = (BATCH, STEPS) if batch_first else (STEPS, BATCH)
    return layer, rng.normal(size=shape + (INPUTS,)), rng.normal(size=shape + (HIDDEN,)), rng


def _with_hidden(state, hidden):
    """The state with its h replaced (the LSTM's c kept)."""
    return (hidden, state[1]) if isinstance(state, tuple) else hidden


def _split_loss(layer, x, dy, t, delta):
    """sum(y * dy) over all steps, with delta (B, H) added to h_t where it leaves step t."""
    time_axis = 1 if layer.batch_first else 0
    before, after = np.split(x, [t + 1], axis=time_axis)
    dy_before, dy_after = np.split(dy, [t + 1], axis=time_axis)
    y_before, state = layer(before)
    hidden = (state[0] if isinstance(state, tuple) else state) + delta[None]
    y_after, _ = layer(after, _with_hidden(state, hidden))
    last = np.take(y_before, [t], axis=time_axis) + np.expand_dims(delta, time_axis)
    y_before = np.concatenate([np.take(y_before, range(t), axis=time_axis), last], axis=time_axis)
    return float((y_before * dy_before).sum() + (y_after * dy_after).sum())


@pytest.mark.parametrize("t", [0, STEPS // 2, STEPS - 2])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_hidden_gradients_match_finite_differences_of_the_carried_state(kind, batch_first, t):
    layer, x, dy, _ = _layer_and_data(kind, batch_first)
    gradients = hidden_gradients(layer, x, dy)
    assert gradients.shape == (STEPS, BATCH, HIDDEN) and gradients.dtype == np.float64
    delta = np.zeros((BATCH, HIDDEN))
    expected = numerical_gradient(lambda: _split_loss(layer, x, dy, t, delta), delta)
    assert_close(f"{kind} dL/dh_{t}", gradients[t], expected, FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_last_step_gets_only_its_own_output_gradient_and_the_final_state_gradient(kind):
    layer, x, dy, rng = _layer_and_data(kind)
    assert np.array_equal(hidden_gradients(layer, x, dy)[-1], dy[:, -1])
    _, state = layer(x)
    dstate = tuple(rng.normal(size=s.shape) for s in state) if isinstance(state, tuple) else rng.normal(size=state.shape)
    d_hidden = dstate[0] if isinstance(dstate, tuple) else dstate
    assert_close(
        "G[T-1] with dstate", hidden_gradients(layer, x, dy, dstate=dstate)[-1], dy[:, -1] + d_hidden[0], 1e-15, 1e-15
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_hidden_gradients_start_from_the_given_state_and_leave_grads_alone(kind):
    layer, x, dy, _ = _layer_and_data(kind)
    _, state = layer(x)
    layer.grads[next(iter(layer.grads))][...] = 1.0
    before = {name: grad.copy() for name, grad in layer.grads.items()}
    from_state = hidden_gradients(layer, x, dy, state=state)
    from_zeros = hidden_gradients(layer, x, dy)
    assert not np.allclose(from_state[0], from_zeros[0])
    for name, grad in layer.grads.items():
        assert np.array_equal(grad, before[name]), name


@pytest.mark.parametrize(
    "layer, message",
    [
        (lstmcore.LSTM(2, 3, num_layers=2), "one layer and one direction"),
        (lstmcore.GRU(2, 3, bidirectional=True), "one layer and one direction"),
        (lstmcore.RNN(2, 3, reverse=True), "one layer and one direction"),
        (lstmcore.LSTMCell(2, 3), "LSTM, GRU or RNN layer"),
        (lstmcore.Dense(2, 3), "LSTM, GRU or RNN layer"),
    ],
)
def test_other_layers_are_refused_with_a_clear_error(layer, message):
    x = np.zeros((1, 4, 2), np.float32)
    with pytest.raises(ValueError, match=message):
        hidden_gradients(layer, x, np.zeros((1, 4, 3), np.float32))


def test_a_wrong_dy_shape_is_refused_naming_both_shapes():
    layer, x, dy, _ = _layer_and_data("gru")
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 6, 4\)"):
        hidden_gradients(layer, x, dy[:, :-1])
