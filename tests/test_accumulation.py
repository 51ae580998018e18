"""backward adds into layer.grads (it does not overwrite them); zero_grad resets them.

Two backward calls must give the sum of what each gives alone. The core adds its
gradient to the buffer, so the only difference from the separately computed sum is the
order of the additions: 1e-12 of the scale in float64, 1e-6 in float32 (a few eps32).
"""

import numpy as np

import lstmcore
from _compare import assert_close, scaled_atol
from _variants import dtypes, kinds

LAYERS = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU}
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-6}


def make_layer(kind, dtype):
    return LAYERS[kind](3, 6, 2, bidirectional=True, dtype=dtype, seed=5)


def one_backward(layer, x, dy):
    """The gradients of one forward/backward on a fresh copy of ``layer`` (zeroed grads)."""
    _, _, tape = layer.forward(x)
    layer.backward(tape, dy)
    return {name: grad.copy() for name, grad in layer.grads.items()}


@kinds
@dtypes
def test_two_backward_calls_add_their_gradients(kind, dtype):
    rng = np.random.default_rng(30)
    x1, x2 = (rng.normal(size=(2, 5, 3)).astype(dtype) for _ in range(2))
    dy1, dy2 = (rng.normal(size=(2, 5, 12)).astype(dtype) for _ in range(2))
    alone = []
    for x, dy in ((x1, dy1), (x2, dy2)):
        layer = make_layer(kind, dtype)
        alone.append(one_backward(layer, x, dy))

    layer = make_layer(kind, dtype)
    _, _, tape1 = layer.forward(x1)
    _, _, tape2 = layer.forward(x2)
    dx_first, _ = layer.backward(tape1, dy1)
    layer.backward(tape2, dy2)
    tol = TOLERANCE[dtype]
    for name, grad in layer.grads.items():
        expected = alone[0][name].astype(np.float64) + alone[1][name]
        assert np.any(alone[1][name] != 0), f"{name}: the second call contributed nothing; pick other inputs"
        assert_close(name, grad, expected, tol, scaled_atol(tol, expected))

    # The same tape twice gives exactly twice one call, and dx does not depend on grads.
    dx_again, _ = layer.backward(tape1, dy1)
    np.testing.assert_array_equal(dx_again, dx_first)
    layer.zero_grad()
    layer.backward(tape1, dy1)
    layer.backward(tape1, dy1)
    for name, grad in layer.grads.items():
        expected = 2 * alone[0][name].astype(np.float64)
        assert_close(f"{name} (same tape twice)", grad, expected, tol, scaled_atol(tol, expected))


@kinds
def test_zero_grad_resets_every_gradient_in_place(kind):
    layer = make_layer(kind, np.float64)
    buffers = dict(layer.grads.items())
    x = np.random.default_rng(31).normal(size=(2, 4, 3))
    y, _, tape = layer.forward(x)
    layer.backward(tape, np.ones_like(y))
    assert all(np.any(grad != 0) for grad in layer.grads.values())
    layer.zero_grad()
    for name, grad in layer.grads.items():
        assert grad is buffers[name], f"zero_grad replaced grads[{name!r}] instead of zeroing it"
        assert not np.any(grad), f"grads[{name!r}] not zero after zero_grad"
    # After the reset one call gives one call's gradients, not the sum with the old ones.
    fresh = one_backward(make_layer(kind, np.float64), x, np.ones_like(y))
    layer.backward(tape, np.ones_like(y))
    for name, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, fresh[name], err_msg=name)
