"""A tape keeps its own copy of every caller array that backward reads: the caller may
change or reuse its buffers between forward and backward (a streaming loop reusing its
state, a data loader refilling its batch) and the gradients stay those of the forward."""

import numpy as np
import pytest

import lstmcore


def _grads_after(layer, x, state, change):
    """The layer's grads from forward(x, state), backward after change() ran in between."""
    layer.zero_grad()
    y, _, tape = layer.forward(x, state)
    change()
    dx, _dstate0 = layer.backward(tape, np.ones_like(y))
    return {name: value.copy() for name, value in layer.grads.items()}, dx


@pytest.mark.parametrize("cls", [lstmcore.LSTM, lstmcore.GRU])
@pytest.mark.parametrize("batch_first", [True, False])
def test_changing_the_initial_state_in_place_after_forward_does_not_change_the_gradients(cls, batch_first):
    rng = np.random.default_rng(0)
    layer = cls(5, 8, 2, bidirectional=True, batch_first=batch_first, seed=0)
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    h0 = rng.normal(size=(4, 3 if batch_first else 4, 8)).astype(np.float32)
    c0 = rng.normal(size=h0.shape).astype(np.float32)
    state = (h0, c0) if cls is lstmcore.LSTM else h0
    expected, expected_dx = _grads_after(layer, x, state, lambda: None)

    def overwrite():
        h0[...] = 0
        c0[...] = 0

    got, dx = _grads_after(layer, x, state, overwrite)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    np.testing.assert_array_equal(dx, expected_dx)


def test_the_tape_never_keeps_the_callers_state_buffer_and_inference_copies_none():
    layer = lstmcore.GRU(5, 8, seed=0)
    h0 = np.zeros((1, 3, 8), np.float64)  # converted to float32: already the layer's own
    parts = layer._state_parts(h0, 3, "state", keep=True)
    assert not np.may_share_memory(parts[0], h0)
    h0_32 = h0.astype(np.float32)
    assert not np.may_share_memory(layer._state_parts(h0_32, 3, "state", keep=True)[0], h0_32)
    assert np.may_share_memory(layer._state_parts(h0_32, 3, "state")[0], h0_32)


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5)])
def test_changing_x_in_place_after_dense_forward_does_not_change_dw(shape):
    rng = np.random.default_rng(1)
    dense = lstmcore.Dense(5, 2, seed=0)
    x = rng.normal(size=shape).astype(np.float32)
    y, tape = dense.forward(x)
    dense.backward(tape, np.ones_like(y))
    expected = {name: value.copy() for name, value in dense.grads.items()}
    dense.zero_grad()
    y, tape = dense.forward(x)
    x[...] = 0
    dense.backward(tape, np.ones_like(y))
    for name in expected:
        np.testing.assert_array_equal(dense.grads[name], expected[name], err_msg=name)
