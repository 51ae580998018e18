"""The NumPy reference (lstmcore.reference) against finite differences and against PyTorch.

The reference is the oracle of every other numerical test, so it is checked on its own:
its backward against central differences of its forward (float64), and both passes
against torch.nn.LSTM / nn.GRU when torch is installed.

Tolerances:
- Finite differences, eps = 1e-6 in float64: truncation error ~ eps^2 * |f'''| ~ 1e-12 and
  rounding error ~ 1e-16 * |loss| / eps ~ 1e-9 for losses of order 10, so atol 1e-7 and
  rtol 1e-6 leave two orders of magnitude (observed <= 1.5e-9); a wrong term in a
  gradient is off by O(0.1).
- Against torch, float64: both compute the same expressions, only in a different order,
  so 1e-12 times the tensor's scale (observed ~2e-15).
"""

import numpy as np
import pytest

from _compare import assert_close, numerical_gradient, scaled_atol
from lstmcore import reference

FD_RTOL, FD_ATOL = 1e-6, 1e-7
TORCH_TOL = 1e-12
STATES = {"lstm": ("h", "c"), "gru": ("h",)}
GATES = {"lstm": 4, "gru": 3}


def random_params(kind, input_size, hidden, num_layers, directions, rng, dtype=np.float64):
    gates = GATES[kind] * hidden
    params = {}
    for layer in range(num_layers):
        features = input_size if layer == 0 else directions * hidden
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            params["weight_ih" + suffix] = rng.uniform(-0.6, 0.6, (gates, features)).astype(dtype)
            params["weight_hh" + suffix] = rng.uniform(-0.6, 0.6, (gates, hidden)).astype(dtype)
            params["bias_ih" + suffix] = rng.uniform(-0.6, 0.6, gates).astype(dtype)
            params["bias_hh" + suffix] = rng.uniform(-0.6, 0.6, gates).astype(dtype)
    return params


def pack(kind, parts):
    return tuple(parts) if kind == "lstm" else parts[0]


def unpack(kind, state):
    return tuple(state) if kind == "lstm" else (state,)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cell_backward_matches_finite_differences(kind):
    rng = np.random.default_rng(10)
    steps, batch, input_size, hidden = 3, 2, 3, 4
    forward, backward = reference.cells[kind].forward, reference.cells[kind].backward
    x = rng.normal(size=(steps, batch, input_size))
    weights = {k.removesuffix("_l0"): v for k, v in random_params(kind, input_size, hidden, 1, 1, rng).items()}
    states0 = {f"{s}0": rng.normal(size=(batch, hidden)) for s in STATES[kind]}
    dy = rng.normal(size=(steps, batch, hidden))
    d_finals = {f"d{s}_n": rng.normal(size=(batch, hidden)) for s in STATES[kind]}

    def loss():
        y, *finals, _ = forward(x, **weights, **states0)
        return np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(finals, d_finals.values()))

    *_, cache = forward(x, **weights, **states0)
    grads = backward(cache, dy, **d_finals)
    assert sorted(grads) == sorted(["dx", *(f"d{s}0" for s in STATES[kind]), *weights])
    checked = {"dx": x, **{f"d{s}0": states0[f"{s}0"] for s in STATES[kind]}, **weights}
    for name, array in checked.items():
        assert_close(name, grads[name], numerical_gradient(loss, array), FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stacked_bidirectional_backward_matches_finite_differences(kind):
    rng = np.random.default_rng(11)
    steps, batch, input_size, hidden, num_layers = 3, 2, 3, 4, 2
    params = random_params(kind, input_size, hidden, num_layers, 2, rng)
    x = rng.normal(size=(steps, batch, input_size))  # time-major
    state = [rng.normal(size=(num_layers * 2, batch, hidden)) for _ in STATES[kind]]
    dy = rng.normal(size=(steps, batch, 2 * hidden))
    dstate = [rng.normal(size=s.shape) for s in state]
    options = dict(num_layers=num_layers, bidirectional=True, batch_first=False)

    def loss():
        y, final, _ = reference.rnn_forward(kind, params, x, pack(kind, state), **options)
        return np.sum(y * dy) + sum(np.sum(f * d) for f, d in zip(unpack(kind, final), dstate))

    _, _, cache = reference.rnn_forward(kind, params, x, pack(kind, state), **options)
    dx, dstate0, grads = reference.rnn_backward(cache, dy, pack(kind, dstate))
    assert sorted(grads) == sorted(params)
    assert_close("dx", dx, numerical_gradient(loss, x), FD_RTOL, FD_ATOL)
    for name, got, initial in zip(STATES[kind], unpack(kind, dstate0), state):
        assert_close(f"d{name}0", got, numerical_gradient(loss, initial), FD_RTOL, FD_ATOL)
    for name, value in params.items():
        assert_close(name, grads[name], numerical_gradient(loss, value), FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_reference_computes_in_float32_and_agrees_with_float64(kind):
    # float32 end to end (no silent promotion), and close to float64: a few dozen rounding
    # steps of eps32 = 1.2e-7 over T=4 steps and 2 layers; 1e-5 of the scale (observed 1.7e-7).
    rng = np.random.default_rng(12)
    params = random_params(kind, 3, 5, 2, 2, rng, np.float32)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    dy = rng.normal(size=(2, 4, 10)).astype(np.float32)
    results = {}
    for dtype in (np.float32, np.float64):
        cast = {k: v.astype(dtype) for k, v in params.items()}
        y, final, cache = reference.rnn_forward(kind, cast, x.astype(dtype), num_layers=2, bidirectional=True)
        dx, dstate0, grads = reference.rnn_backward(cache, dy.astype(dtype))
        results[dtype] = {"y": y, "dx": dx, **{f"d{s}0": d for s, d in zip(STATES[kind], unpack(kind, dstate0))}}
        results[dtype].update({f"{s}_n": f for s, f in zip(STATES[kind], unpack(kind, final))}, **grads)
    for name, got in results[np.float32].items():
        assert got.dtype == np.float32, f"{name} is {got.dtype}, expected float32"
        expected = results[np.float64][name]
        assert_close(name, got, expected, 1e-5, scaled_atol(1e-5, expected))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_backward_returns_fresh_arrays(kind):
    rng = np.random.default_rng(13)
    forward, backward = reference.cells[kind].forward, reference.cells[kind].backward
    weights = {k.removesuffix("_l0"): v for k, v in random_params(kind, 2, 3, 1, 1, rng).items()}
    states0 = {f"{s}0": rng.normal(size=(2, 3)) for s in STATES[kind]}
    *_, cache = forward(rng.normal(size=(4, 2, 2)), **weights, **states0)
    dy = rng.normal(size=(4, 2, 3))
    first = backward(cache, dy)
    second = backward(cache, dy)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)  # no accumulation
    arrays = list(first.values()) + list(second.values())
    assert len({id(a) for a in arrays}) == len(arrays), "a gradient array is shared"
    assert not any(np.shares_memory(a, b) for k, a in enumerate(arrays) for b in arrays[k + 1 :])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize(
    "num_layers, bidirectional, batch_first", [(1, False, True), (2, True, False), (3, True, True)]
)
def test_reference_matches_torch(kind, num_layers, bidirectional, batch_first):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    steps, batch, input_size, hidden = 5, 3, 4, 6
    directions = 2 if bidirectional else 1
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    torch.manual_seed(0)
    net = module(input_size, hidden, num_layers, bidirectional=bidirectional, batch_first=batch_first).double()
    params = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}

    x = rng.normal(size=(batch, steps, input_size) if batch_first else (steps, batch, input_size))
    state = [rng.normal(size=(num_layers * directions, batch, hidden)) for _ in STATES[kind]]
    x_t = torch.tensor(x, requires_grad=True)
    state_t = [torch.tensor(s, requires_grad=True) for s in state]
    y_t, final_t = net(x_t, pack(kind, state_t))
    final_t = unpack(kind, final_t)
    dy = rng.normal(size=tuple(y_t.shape))
    dstate = [rng.normal(size=s.shape) for s in state]
    loss = (y_t * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(final_t, dstate))
    loss.backward()

    options = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    y, final, cache = reference.rnn_forward(kind, params, x, pack(kind, state), **options)
    dx, dstate0, grads = reference.rnn_backward(cache, dy, pack(kind, dstate))

    def check(name, got, expected):
        expected = expected.detach().numpy()
        assert_close(name, got, expected, TORCH_TOL, scaled_atol(TORCH_TOL, expected))

    check("y", y, y_t)
    check("dx", dx, x_t.grad)
    for name, got, expected in zip(STATES[kind], unpack(kind, final), final_t):
        check(f"{name}_n", got, expected)
    for name, got, initial in zip(STATES[kind], unpack(kind, dstate0), state_t):
        check(f"d{name}0", got, initial.grad)
    assert sorted(grads) == sorted(name for name, _ in net.named_parameters())
    for name, parameter in net.named_parameters():
        check(name, grads[name], parameter.grad)
