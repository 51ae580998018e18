"""dL/dh_t at every step: ``backward(..., return_hidden_gradients=True)`` and
``lstmcore.inspect.hidden_gradients``, for the LSTM, GRU and RNN.

Checked in float64 against central differences of the loss with respect to the hidden
state carried out of step t, taken by running the steps up to t and the steps after it
separately and adding eps to h_t in between (tolerances FD_RTOL, FD_ATOL of _compare);
against its definition at the last step, where only dy_{T-1} (and dstate) reach h; and
against a second exact method that uses nothing but each layer's public forward and
backward (suffix passes, below). The comparisons with the NumPy reference (every
variant, both dtypes, stacked, bidirectional, lengths) are in test_core_matches_reference,
test_variants, test_rnn and test_fuzz_layers; PyTorch's autograd in test_reference.
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
    assert gradients.shape == (1, STEPS, BATCH, HIDDEN) and gradients.dtype == np.float64
    gradients = gradients[0]
    delta = np.zeros((BATCH, HIDDEN))
    expected = numerical_gradient(lambda: _split_loss(layer, x, dy, t, delta), delta)
    assert_close(f"{kind} dL/dh_{t}", gradients[t], expected, FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_last_step_gets_only_its_own_output_gradient_and_the_final_state_gradient(kind):
    layer, x, dy, rng = _layer_and_data(kind)
    assert np.array_equal(hidden_gradients(layer, x, dy)[0, -1], dy[:, -1])
    _, state = layer(x)
    dstate = tuple(rng.normal(size=s.shape) for s in state) if isinstance(state, tuple) else rng.normal(size=state.shape)
    d_hidden = dstate[0] if isinstance(dstate, tuple) else dstate
    assert_close(
        "G[T-1] with dstate", hidden_gradients(layer, x, dy, dstate=dstate)[0, -1], dy[:, -1] + d_hidden[0], 1e-15, 1e-15
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_hidden_gradients_start_from_the_given_state_and_leave_grads_alone(kind):
    layer, x, dy, _ = _layer_and_data(kind)
    _, state = layer(x)
    layer.grads[next(iter(layer.grads))][...] = 1.0
    before = {name: grad.copy() for name, grad in layer.grads.items()}
    from_state = hidden_gradients(layer, x, dy, state=state)
    from_zeros = hidden_gradients(layer, x, dy)
    assert not np.allclose(from_state[0, 0], from_zeros[0, 0])
    for name, grad in layer.grads.items():
        assert np.array_equal(grad, before[name]), name


def suffix_hidden_gradients(layer, x, dy, dstate=None):
    """dL/dh_t (T, B, P) of a one-layer, one-direction layer by another exact method: for
    each t, the layer runs again from the state carried out of step t (h_t = y_t, the
    LSTM's c_t from the gate traces) over the steps after t, and backward gives that
    state's gradient; plus dy_t. T - 1 passes over suffixes, through the public API only."""
    y, _, tape = layer.forward(x, training=False)
    hidden = y.transpose(1, 0, 2) if layer.batch_first else y
    cell = layer.gate_traces(tape)[0]["cell"] if isinstance(layer, lstmcore.LSTM) else None
    expected = np.array(dy.transpose(1, 0, 2) if layer.batch_first else dy)
    if dstate is not None:
        expected[-1] += (dstate[0] if isinstance(dstate, tuple) else dstate)[0]
    for t in range(expected.shape[0] - 1):
        carried = hidden[t][None] if cell is None else (hidden[t][None], cell[t][None])
        rest = (x[:, t + 1 :], dy[:, t + 1 :]) if layer.batch_first else (x[t + 1 :], dy[t + 1 :])
        _, _, suffix_tape = layer.forward(rest[0], carried, training=False)
        _, d_carried = layer.backward(suffix_tape, rest[1], dstate)
        expected[t] += (d_carried[0] if isinstance(d_carried, tuple) else d_carried)[0]
    return expected


SUFFIX_CASES = {
    "lstm": (lstmcore.LSTM, {}),
    "peephole_coupled": (lstmcore.LSTM, {"peephole": True, "coupled": True}),
    "layer_norm": (lstmcore.LSTM, {"layer_norm": True}),
    "projected": (lstmcore.LSTM, {"proj_size": 3}),
    "gru": (lstmcore.GRU, {}),
    "gru-reset_before": (lstmcore.GRU, {"reset_after": False}),
    "rnn-relu": (lstmcore.RNN, {"nonlinearity": "relu"}),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(SUFFIX_CASES.values()), ids=list(SUFFIX_CASES))
def test_backward_records_what_suffix_passes_from_each_carried_state_give(case, dtype):
    cls, options = case
    rng = np.random.default_rng(4)
    layer = cls(INPUTS, 5, dtype=dtype, seed=4, **options)
    x = rng.normal(size=(BATCH, STEPS, INPUTS)).astype(dtype)
    _, state = layer(x)
    dy = rng.normal(size=(BATCH, STEPS, layer.output_size)).astype(dtype)
    dstate = tuple(rng.normal(size=s.shape).astype(dtype) for s in state) if isinstance(state, tuple) else None
    _, _, tape = layer.forward(x, training=False)
    _, _, recorded = layer.backward(tape, dy, dstate, return_hidden_gradients=True)
    assert recorded.shape == (1, STEPS, BATCH, layer.output_size) and recorded.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    expected = suffix_hidden_gradients(layer, x, dy, dstate)
    assert_close("hidden gradients", recorded[0], expected, tol, tol * max(1.0, float(np.abs(expected).max())))


def test_stacked_bidirectional_layers_with_lengths_give_each_layer_direction_its_own():
    rng = np.random.default_rng(5)
    layer = lstmcore.GRU(INPUTS, HIDDEN, num_layers=2, bidirectional=True, dtype=np.float64, seed=5)
    x = rng.normal(size=(3, STEPS, INPUTS))
    dy = rng.normal(size=(3, STEPS, 2 * HIDDEN))
    lengths = np.array([STEPS, 2, 4])
    gradients = hidden_gradients(layer, x, dy, lengths=lengths)
    assert gradients.shape == (4, STEPS, 3, HIDDEN)
    for b, length in enumerate(lengths):
        alone = hidden_gradients(layer, x[b : b + 1, :length], dy[b : b + 1, :length])
        assert_close(f"sequence {b}", gradients[:, :length, b : b + 1], alone, 1e-12, 1e-12)
        assert not gradients[:, length:, b].any(), f"padding steps of sequence {b} are not zero"
    # The top layer's forward direction at its last step sees only dy there; its reverse
    # direction's last step in its own order is t = 0.
    assert_close("top forward, t = T-1", gradients[2, STEPS - 1, 0], dy[0, STEPS - 1, :HIDDEN], 1e-15, 1e-15)
    assert_close("top reverse, t = 0", gradients[3, 0, :], dy[:, 0, HIDDEN:], 1e-15, 1e-15)


def test_the_vanilla_rnn_gradient_shrinks_step_after_step_back_from_the_loss():
    # The seed's claim in miniature: small recurrent weights (spectral norm 0.5) and a loss
    # read at the last step only; each step back multiplies dL/dh by W_hh^T diag(1 - h^2).
    rng = np.random.default_rng(6)
    layer = lstmcore.RNN(INPUTS, HIDDEN, dtype=np.float64, seed=6)
    weight = rng.normal(size=(HIDDEN, HIDDEN))
    layer.params["weight_hh_l0"][...] = 0.5 * weight / np.linalg.norm(weight, 2)
    x = rng.normal(size=(BATCH, 30, INPUTS))
    dy = np.zeros((BATCH, 30, HIDDEN))
    dy[:, -1] = 1.0
    norms = np.linalg.norm(hidden_gradients(layer, x, dy)[0], axis=2).max(axis=1)  # (T,)
    assert np.all(norms[:-1] <= 0.5 * norms[1:] + 1e-300), norms
    assert norms[0] < 1e-8 * norms[-1]


@pytest.mark.parametrize(
    "layer, message",
    [
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
