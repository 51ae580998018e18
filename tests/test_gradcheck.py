"""The layers' backward against central finite differences of their forward (float64, public API).

loss = sum(y * R) + sum over the final states of sum(state_n * S), so dy = R and
dstate = S. Checked: every entry of dx and of each initial-state gradient, and a sample
of entries of every parameter (the first, the last and 6 random ones).

Tolerance: eps = 1e-6, float64. Truncation ~ eps^2 |f'''| ~ 1e-12, rounding
~ 1e-16 * |loss| / eps ~ 1e-9 for losses of order 10: atol 1e-7, rtol 1e-6 (observed
errors <= 3e-9); a wrong or missing term is off by O(0.1).
"""

import numpy as np
import pytest

import lstmcore
from _compare import FD_ATOL as ATOL
from _compare import FD_RTOL as RTOL
from _compare import assert_close, numerical_gradient, sample_indices
from _variants import kinds

LAYERS = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU}


def parts(kind, state):
    return list(state) if kind == "lstm" else [state]


def pack(kind, parts_):
    return tuple(parts_) if kind == "lstm" else parts_[0]


@kinds
@pytest.mark.parametrize(
    "steps, batch, input_size, hidden, num_layers, bidirectional, batch_first",
    [(4, 2, 3, 5, 2, True, True), (1, 1, 2, 3, 1, False, False), (3, 2, 4, 3, 3, True, False)],
    ids=["L2-bidir", "T1-B1", "L3-bidir-time-major"],
)
def test_backward_matches_finite_differences(kind, steps, batch, input_size, hidden, num_layers, bidirectional, batch_first):
    rng = np.random.default_rng(20)
    layer = LAYERS[kind](
        input_size, hidden, num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=np.float64, seed=1
    )
    # Weights larger than the default +-1/sqrt(H) so the gates are not all near-linear.
    for value in layer.params.values():
        value[...] = rng.uniform(-0.8, 0.8, value.shape)
    directions = 2 if bidirectional else 1
    x = rng.normal(size=(batch, steps, input_size) if batch_first else (steps, batch, input_size))
    state_shape = (num_layers * directions, batch, hidden)
    state = [rng.normal(size=state_shape) for _ in ("h", "c")[: 2 if kind == "lstm" else 1]]
    dy = rng.normal(size=x.shape[:2] + (directions * hidden,))
    dstate = [rng.normal(size=state_shape) for _ in state]

    def loss():
        y, final, _ = layer.forward(x, pack(kind, state))
        return np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(parts(kind, final), dstate))

    _, _, tape = layer.forward(x, pack(kind, state))
    dx, dstate0 = layer.backward(tape, dy, pack(kind, dstate))
    assert_close("dx", dx, numerical_gradient(loss, x), RTOL, ATOL)
    for name, got, initial in zip(("dh0", "dc0"), parts(kind, dstate0), state):
        assert_close(name, got, numerical_gradient(loss, initial), RTOL, ATOL)
    for name, value in layer.params.items():
        indices = sample_indices(value.shape, 6, rng)
        estimate = numerical_gradient(loss, value, indices)
        sampled = np.full(value.shape, np.nan)
        for index in indices:
            sampled[index] = layer.grads[name][index]
        assert_close(name, sampled, estimate, RTOL, ATOL, equal_nan=True)
