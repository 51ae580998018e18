"""Parameters: PyTorch's names, shapes and initialisation; seeds; weights loaded from torch."""

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, scaled_atol
from _variants import dtypes, kinds

LAYERS = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU}
GATES = {"lstm": 4, "gru": 3}


def expected_shapes(kind, input_size, hidden, num_layers, bidirectional):
    """nn.LSTM / nn.GRU state_dict() names and shapes, in registration order."""
    rows = GATES[kind] * hidden
    shapes = {}
    for layer in range(num_layers):
        features = input_size if layer == 0 else (2 if bidirectional else 1) * hidden
        for suffix in [f"_l{layer}"] + ([f"_l{layer}_reverse"] if bidirectional else []):
            shapes["weight_ih" + suffix] = (rows, features)
            shapes["weight_hh" + suffix] = (rows, hidden)
            shapes["bias_ih" + suffix] = (rows,)
            shapes["bias_hh" + suffix] = (rows,)
    return shapes


@kinds
@dtypes
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (3, True)])
def test_params_have_pytorchs_names_and_shapes(kind, dtype, num_layers, bidirectional):
    layer = LAYERS[kind](7, 5, num_layers, bidirectional=bidirectional, dtype=dtype, seed=0)
    expected = expected_shapes(kind, 7, 5, num_layers, bidirectional)
    assert list(layer.params) == list(expected), "names or their order differ from PyTorch's state_dict()"
    assert {k: v.shape for k, v in layer.params.items()} == expected
    assert {k: v.shape for k, v in layer.grads.items()} == expected
    for name in expected:
        assert layer.params[name].dtype == dtype and layer.grads[name].dtype == dtype, name
        assert not np.any(layer.grads[name]), f"grads[{name!r}] does not start at zero"


@kinds
def test_params_are_uniform_in_plus_minus_one_over_sqrt_hidden(kind):
    hidden = 16
    bound = 1 / np.sqrt(hidden)
    layer = LAYERS[kind](10, hidden, 2, bidirectional=True, dtype=np.float64, seed=7)
    for name, value in layer.params.items():
        assert np.abs(value).max() <= bound, f"{name}: {np.abs(value).max()} outside +-{bound}"
        # Spread over the interval, not a constant or a narrow band (>= 48 values each).
        assert value.max() > 0.5 * bound and value.min() < -0.5 * bound, f"{name} is not spread over +-{bound}"
        assert len(np.unique(value)) == value.size, f"{name} has repeated values"
    everything = np.concatenate([v.ravel() for v in layer.params.values()])
    # Uniform(-b, b): mean 0, standard deviation b/sqrt(3); over ~6000 draws both within a few %.
    assert abs(everything.mean()) < 0.05 * bound
    assert abs(everything.std() / (bound / np.sqrt(3)) - 1) < 0.05


@kinds
def test_same_seed_same_params_other_seed_other_params(kind):
    def make(seed):
        return LAYERS[kind](4, 6, 2, bidirectional=True, dtype=np.float32, seed=seed)

    first, again, other, unseeded_a, unseeded_b = make(3), make(3), make(4), make(None), make(None)
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], again.params[name], err_msg=name)
        assert np.all(first.params[name] != other.params[name]), f"{name}: seeds 3 and 4 share values"
        assert np.any(unseeded_a.params[name] != unseeded_b.params[name]), f"{name}: seed=None repeats"


@kinds
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
def test_torch_state_dict_loads_and_gives_torchs_outputs_and_gradients(kind, batch_first):
    # float64 on both sides; the only difference is the order of the sums: 1e-10 of the
    # scale (observed ~1e-15).
    torch = pytest.importorskip("torch")
    steps, batch, input_size, hidden, num_layers = 6, 3, 5, 7, 2
    torch.manual_seed(1)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    net = module(input_size, hidden, num_layers, bidirectional=True, batch_first=batch_first).double()
    layer = LAYERS[kind](
        input_size, hidden, num_layers, bidirectional=True, batch_first=batch_first, dtype=np.float64, seed=0
    )
    state_dict = net.state_dict()
    assert list(state_dict) == list(layer.params)
    for name, value in state_dict.items():
        layer.params[name][...] = value.numpy()

    rng = np.random.default_rng(70)
    x = rng.normal(size=(batch, steps, input_size) if batch_first else (steps, batch, input_size))
    states = [rng.normal(size=(2 * num_layers, batch, hidden)) for _ in range(2 if kind == "lstm" else 1)]
    x_t = torch.tensor(x, requires_grad=True)
    states_t = [torch.tensor(s, requires_grad=True) for s in states]
    y_t, final_t = net(x_t, tuple(states_t) if kind == "lstm" else states_t[0])
    final_t = list(final_t) if kind == "lstm" else [final_t]
    dy = rng.normal(size=tuple(y_t.shape))
    dfinal = [rng.normal(size=s.shape) for s in states]
    loss = (y_t * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(final_t, dfinal))
    loss.backward()

    pack = tuple if kind == "lstm" else (lambda parts: parts[0])
    y, final, tape = layer.forward(x, pack(states))
    dx, dstate0 = layer.backward(tape, dy, pack(dfinal))
    final = list(final) if kind == "lstm" else [final]
    dstate0 = list(dstate0) if kind == "lstm" else [dstate0]

    def check(name, got, expected):
        expected = expected.detach().numpy()
        assert_close(name, got, expected, 1e-10, scaled_atol(1e-10, expected))

    check("y", y, y_t)
    check("dx", dx, x_t.grad)
    for name, got, expected in zip(("h_n", "c_n"), final, final_t):
        check(name, got, expected)
    for name, got, initial in zip(("dh0", "dc0"), dstate0, states_t):
        check(name, got, initial.grad)
    for name, parameter in net.named_parameters():
        check(name, layer.grads[name], parameter.grad)
