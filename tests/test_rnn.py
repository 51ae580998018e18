"""The vanilla RNN (lstmcore.RNN, PyTorch's nn.RNN) against the NumPy reference, finite
differences and torch.nn.RNN; its lengths, directions, layouts, thread splits, streaming,
traces, model files and errors.

Tolerances (tests/README.md): float64 against the reference 1e-12 of each tensor's scale
(the same sums in another order); float32 against the reference in float64 on the same
float32 inputs 1e-5 (dot products of a few dozen terms, the activations' own bound, over
at most 7 steps and 2 layers); finite differences FD_RTOL / FD_ATOL (_compare.py);
torch in float64 1e-10 (its own order of sums, BLAS's blocking).
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore
from _compare import FD_ATOL, FD_RTOL, assert_close, numerical_gradient, sample_indices, scaled_atol
from _layers import input_size_past_dx_threshold, move_off_initialisation, pass_split
from _variants import dtypes
from lstmcore import reference

TOL = {np.float32: 1e-5, np.float64: 1e-12}
TORCH_TOL = 1e-10
NONLINEARITIES = ("tanh", "relu")
nonlinearities = pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
# (num_layers, bidirectional, batch_first)
SHAPES = [(1, False, True), (2, True, False), (2, False, True), (1, True, True)]
shapes = pytest.mark.parametrize("num_layers, bidirectional, batch_first", SHAPES)


def make_layer(nonlinearity, num_layers=1, bidirectional=False, batch_first=True, dtype=np.float64, input_size=4, hidden=6):
    layer = lstmcore.RNN(
        input_size,
        hidden,
        num_layers,
        nonlinearity=nonlinearity,
        bidirectional=bidirectional,
        batch_first=batch_first,
        dtype=dtype,
        seed=3,
    )
    return move_off_initialisation(layer, 3)


def inputs(layer, batch, steps, seed):
    """x in the layer's layout, a random state, dy and dh_n, in the layer's dtype."""
    rng = np.random.default_rng(seed)
    shape = (batch, steps) if layer.batch_first else (steps, batch)
    states = (layer.num_layers * layer.num_directions, batch, layer.hidden_size)
    x = rng.normal(size=shape + (layer.input_size,))
    dy = rng.normal(size=shape + (layer.num_directions * layer.hidden_size,))
    return [a.astype(layer.dtype) for a in (x, rng.normal(size=states), dy, rng.normal(size=states))]


def reference_run(layer, x, h0, dy, dh_n, lengths=None):
    """The reference's y, h_n, dx, dh0 and grads for the layer's params, in float64."""
    options = dict(num_layers=layer.num_layers, bidirectional=layer.bidirectional, batch_first=layer.batch_first)
    params = {name: value.astype(np.float64) for name, value in layer.params.items()}
    args = [np.asarray(a, np.float64) for a in (x, h0, dy, dh_n)]
    y, h_n, cache = reference.rnn_forward(
        "rnn", params, args[0], args[1], options={"nonlinearity": layer.nonlinearity}, **options
    )
    dx, dh0, grads, hidden = reference.rnn_backward(cache, args[2], args[3], return_hidden_gradients=True)
    return y, h_n, dx, dh0, {**grads, "hidden_gradients": hidden}


def check_against(expected, got, tol):
    for name in expected:
        assert_close(name, got[name], expected[name], tol, scaled_atol(tol, expected[name]))


def layer_run(layer, x, h0, dy, dh_n, **options):
    layer.zero_grad()
    y, h_n, tape = layer.forward(x, h0, **options)
    dx, dh0, hidden = layer.backward(tape, dy, dh_n, return_hidden_gradients=True)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    return {"y": y, "h_n": h_n, "dx": dx, "dh0": dh0, "hidden_gradients": hidden, **grads}


@nonlinearities
@dtypes
@shapes
def test_forward_and_backward_match_the_reference(nonlinearity, dtype, num_layers, bidirectional, batch_first):
    layer = make_layer(nonlinearity, num_layers, bidirectional, batch_first, dtype)
    x, h0, dy, dh_n = inputs(layer, batch=3, steps=7, seed=1)
    y, h_n, dx, dh0, grads = reference_run(layer, x, h0, dy, dh_n)
    got = layer_run(layer, x, h0, dy, dh_n)
    check_against({"y": y, "h_n": h_n, "dx": dx, "dh0": dh0, **grads}, got, TOL[dtype])
    # Inference writes the same y as the training forward, bit for bit.
    y_inference, h_inference = layer(x, h0)
    np.testing.assert_array_equal(y_inference, got["y"])
    np.testing.assert_array_equal(h_inference, got["h_n"])


@nonlinearities
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bidir"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
def test_lengths_match_each_sequence_run_alone(nonlinearity, bidirectional, batch_first):
    layer = make_layer(nonlinearity, 2, bidirectional, batch_first)
    lengths = np.array([3, 7, 1, 5])
    x, h0, dy, dh_n = inputs(layer, batch=4, steps=7, seed=2)
    got = layer_run(layer, x, h0, dy, dh_n, lengths=lengths)
    grads = {name: np.zeros_like(value) for name, value in layer.params.items()}
    for b, length in enumerate(lengths):
        take = (slice(b, b + 1), slice(0, length)) if batch_first else (slice(0, length), slice(b, b + 1))
        y, h_n, dx, dh0, one = reference_run(layer, x[take], h0[:, b : b + 1], dy[take], dh_n[:, b : b + 1])
        check_against({"y": y, "dx": dx}, {"y": got["y"][take], "dx": got["dx"][take]}, 1e-12)
        check_against({"h_n": h_n, "dh0": dh0}, {"h_n": got["h_n"][:, b : b + 1], "dh0": got["dh0"][:, b : b + 1]}, 1e-12)
        hidden = got["hidden_gradients"][:, :, b : b + 1]  # (L*D, T, 1, H), time-major
        check_against({"hidden_gradients": one["hidden_gradients"]}, {"hidden_gradients": hidden[:, :length]}, 1e-12)
        assert not hidden[:, length:].any(), f"hidden gradients on the padding of sequence {b} are not zero"
        for name in grads:
            grads[name] += one[name]
        padding = (slice(b, b + 1), slice(length, None)) if batch_first else (slice(length, None), slice(b, b + 1))
        assert not got["y"][padding].any() and not got["dx"][padding].any(), f"padding of sequence {b} is not zero"
    check_against(grads, got, 1e-12)


@nonlinearities
def test_backward_matches_finite_differences(nonlinearity):
    layer = make_layer(nonlinearity, 2, True, True)
    x, h0, dy, dh_n = inputs(layer, batch=2, steps=4, seed=4)

    def loss():
        y, h_n = layer(x, h0)
        return float((y * dy).sum() + (h_n * dh_n).sum())

    got = layer_run(layer, x, h0, dy, dh_n)
    rng = np.random.default_rng(5)
    for name, array, grad in [("x", x, got["dx"]), ("h0", h0, got["dh0"])] + [
        (name, layer.params[name], got[name]) for name in layer.params
    ]:
        indices = sample_indices(array.shape, 6, rng)
        estimate = numerical_gradient(loss, array, indices)
        expected = np.where(np.isnan(estimate), grad, estimate)
        assert_close(f"d{name}", grad, expected, FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("split", ["units", "batch"])
@nonlinearities
def test_two_threads_match_the_reference(two_threads, split, nonlinearity):
    # Units: few rows, many units; batch: a tile of rows per thread and small weights.
    batch, hidden = (2, 256) if split == "units" else (16, 96)
    for backward in (False, True):
        assert pass_split(batch, 8, hidden, 1, np.float64, backward) == (2, split)
    layer = make_layer(nonlinearity, 1, True, False, input_size=8, hidden=hidden)
    x, h0, dy, dh_n = inputs(layer, batch=batch, steps=5, seed=6)
    lengths = np.arange(batch) % 5 + 1
    for options in ({}, {"lengths": lengths}):
        got = layer_run(layer, x, h0, dy, dh_n, **options)
        if options:  # against one thread (the reference per sequence is the test above)
            lstmcore.set_num_threads(1)
            alone = layer_run(layer, x, h0, dy, dh_n, **options)
            lstmcore.set_num_threads(2)
            check_against(alone, got, 1e-12)
            continue
        y, h_n, dx, dh0, grads = reference_run(layer, x, h0, dy, dh_n)
        check_against({"y": y, "h_n": h_n, "dx": dx, "dh0": dh0, **grads}, got, 1e-12)


def test_dx_after_the_loop_and_dropout_between_layers_match_the_reference():
    # An input so wide that W_ih, packed, is past the per-step limit: dx becomes one
    # product after the loop. Two layers with dropout: the reference gets the same masks.
    input_size = input_size_past_dx_threshold(1, 16, np.float64, threads=1)
    layer = lstmcore.RNN(input_size, 16, 2, dropout=0.5, dtype=np.float64, seed=12)
    x, h0, dy, dh_n = inputs(layer, batch=2, steps=3, seed=13)
    y, h_n, tape = layer.forward(x, h0, training=True)
    dx, dh0 = layer.backward(tape, dy, dh_n)
    got = {"y": y, "h_n": h_n, "dx": dx, "dh0": dh0, **layer.grads}
    params = dict(layer.params)
    options = dict(num_layers=2, bidirectional=False, batch_first=True, input_masks=tape.masks)
    y_ref, h_n_ref, cache = reference.rnn_forward("rnn", params, x, h0, **options)
    dx_ref, dh0_ref, grads = reference.rnn_backward(cache, dy, dh_n)
    assert tape.masks[1] is not None and not tape.masks[1].all()
    check_against({"y": y_ref, "h_n": h_n_ref, "dx": dx_ref, "dh0": dh0_ref, **grads}, got, 1e-12)


def torch_rnn(torch, layer):
    net = torch.nn.RNN(
        layer.input_size,
        layer.hidden_size,
        layer.num_layers,
        nonlinearity=layer.nonlinearity,
        bidirectional=layer.bidirectional,
        batch_first=layer.batch_first,
    ).double()
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            parameter.copy_(torch.from_numpy(layer.params[name].astype(np.float64)))
    return net


@nonlinearities
@shapes
def test_layer_matches_torch(nonlinearity, num_layers, bidirectional, batch_first):
    torch = pytest.importorskip("torch")
    layer = make_layer(nonlinearity, num_layers, bidirectional, batch_first)
    x, h0, dy, dh_n = inputs(layer, batch=3, steps=6, seed=7)
    net = torch_rnn(torch, layer)
    assert sorted(name for name, _ in net.named_parameters()) == sorted(layer.params)
    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    y_t, h_n_t = net(x_t, h0_t)
    ((y_t * torch.tensor(dy)).sum() + (h_n_t * torch.tensor(dh_n)).sum()).backward()
    expected = {"y": y_t, "h_n": h_n_t, "dx": x_t.grad, "dh0": h0_t.grad}
    expected.update({name: parameter.grad for name, parameter in net.named_parameters()})
    check_against({k: v.detach().numpy() for k, v in expected.items()}, layer_run(layer, x, h0, dy, dh_n), TORCH_TOL)


@nonlinearities
def test_a_bias_free_layer_matches_torch_without_biases(nonlinearity):
    torch = pytest.importorskip("torch")
    layer = lstmcore.RNN(4, 6, 2, nonlinearity=nonlinearity, bidirectional=True, bias=False, dtype=np.float64, seed=14)
    move_off_initialisation(layer, 14)
    assert not [name for name in layer.params if "bias" in name] and set(layer.grads) == set(layer.params)
    x, h0, dy, dh_n = inputs(layer, batch=3, steps=5, seed=15)
    net = torch.nn.RNN(4, 6, 2, nonlinearity=nonlinearity, bias=False, bidirectional=True, batch_first=True).double()
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            parameter.copy_(torch.from_numpy(layer.params[name]))
    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    y_t, h_n_t = net(x_t, h0_t)
    ((y_t * torch.tensor(dy)).sum() + (h_n_t * torch.tensor(dh_n)).sum()).backward()
    expected = {"y": y_t, "h_n": h_n_t, "dx": x_t.grad, "dh0": h0_t.grad}
    expected.update({name: parameter.grad for name, parameter in net.named_parameters()})
    check_against({k: v.detach().numpy() for k, v in expected.items()}, layer_run(layer, x, h0, dy, dh_n), TORCH_TOL)


@nonlinearities
def test_reverse_is_the_forward_layer_on_each_sequence_flipped_within_its_length(nonlinearity):
    layer = lstmcore.RNN(4, 6, nonlinearity=nonlinearity, reverse=True, dtype=np.float64, seed=16)
    forward_twin = lstmcore.RNN(4, 6, nonlinearity=nonlinearity, dtype=np.float64, seed=16)
    lengths = np.array([5, 2, 4])
    x, h0, dy, dh_n = inputs(layer, batch=3, steps=5, seed=17)

    def flip(array):
        flipped = array.copy()
        for b, length in enumerate(lengths):
            flipped[b, :length] = array[b, length - 1 :: -1]
        return flipped

    got = layer_run(layer, x, h0, dy, dh_n, lengths=lengths)
    expected = layer_run(forward_twin, flip(x), h0, flip(dy), dh_n, lengths=lengths)
    expected["y"], expected["dx"] = flip(expected["y"]), flip(expected["dx"])
    # (1, T, B, H) time-major: each batch row's steps flipped as flip does for (B, T, H).
    expected["hidden_gradients"] = flip(expected["hidden_gradients"][0].transpose(1, 0, 2)).transpose(1, 0, 2)[None]
    check_against(expected, got, 1e-12)


@nonlinearities
def test_reference_matches_torch(nonlinearity):
    torch = pytest.importorskip("torch")
    layer = make_layer(nonlinearity, 2, True, False)
    x, h0, dy, dh_n = inputs(layer, batch=3, steps=5, seed=8)
    y, h_n, _, _, _ = reference_run(layer, x, h0, dy, dh_n)
    y_t, h_n_t = torch_rnn(torch, layer)(torch.tensor(x), torch.tensor(h0))
    check_against({"y": y_t.detach().numpy(), "h_n": h_n_t.detach().numpy()}, {"y": y, "h_n": h_n}, TORCH_TOL)


def test_relu_passes_no_gradient_through_units_at_zero():
    # A pre-activation below zero gives h = 0 and relu' = 0: nothing reaches x or h0.
    layer = lstmcore.RNN(1, 1, nonlinearity="relu", dtype=np.float64)
    layer.params["weight_ih_l0"][...] = 1.0
    layer.params["weight_hh_l0"][...] = 1.0
    layer.params["bias_ih_l0"][...] = -10.0
    layer.params["bias_hh_l0"][...] = 0.0
    y, _, tape = layer.forward(np.ones((1, 3, 1)))
    assert not y.any()
    dx, dh0 = layer.backward(tape, np.ones_like(y))
    assert not dx.any() and not dh0.any()


@nonlinearities
@dtypes
def test_nan_in_gives_nan_out_from_its_step_on(nonlinearity, dtype):
    # relu(NaN) is NaN, as PyTorch's: max(NaN, 0) must not turn it into 0.
    layer = make_layer(nonlinearity, dtype=dtype, hidden=20)
    x = np.ones((2, 4, 4), dtype)
    x[0, 1, 0] = np.nan
    y, h_n = layer(x)
    assert np.isnan(y[0, 1:]).all() and np.isnan(h_n[0, 0]).all()
    assert not np.isnan(y[0, 0]).any() and not np.isnan(y[1]).any()


@nonlinearities
def test_streaming_steps_match_one_call(nonlinearity):
    layer = make_layer(nonlinearity, 2, False, True, np.float32)
    x, h0, _, _ = inputs(layer, batch=2, steps=5, seed=9)
    y, h_n = layer(x, h0)
    state = h0
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        assert_close(f"y[:, {t}]", y_t, y[:, t], 2e-5, 2e-5)
    assert_close("h_n", state, h_n, 2e-5, 2e-5)


def test_the_hidden_trace_is_h_t():
    layer = make_layer("tanh", 1, True, True)
    x, h0, _, _ = inputs(layer, batch=3, steps=4, seed=10)
    y, _, traces = layer(x, h0, return_gates=True)
    assert [sorted(trace) for trace in traces] == [["hidden"], ["hidden"]]
    for direction, trace in enumerate(traces):
        hidden = y[:, :, direction * 6 : (direction + 1) * 6].transpose(1, 0, 2)
        np.testing.assert_array_equal(trace["hidden"], hidden)
        assert not trace["hidden"].flags.writeable
    lengths = np.array([2, 4, 1])
    y, _, traces = layer(x, h0, lengths=lengths, return_gates=True)
    np.testing.assert_array_equal(traces[1]["hidden"], y[:, :, 6:].transpose(1, 0, 2))


ACTIVATION_NAMES = "sigmoid, tanh, relu, hard_sigmoid, linear, softsign"


@pytest.mark.parametrize("bad", ["gelu", "Tanh", "", None, 1])
def test_a_bad_nonlinearity_is_a_value_error_naming_every_activation(bad):
    with pytest.raises(ValueError, match=ACTIVATION_NAMES):
        lstmcore.RNN(2, 3, nonlinearity=bad)
    layer = lstmcore.RNN(2, 3)
    run = [np.zeros((1, 1, 2), np.float32), None, np.zeros((1, 3), np.float32), np.zeros((1, 1, 3), np.float32)]
    weights = lstmcore._core.RnnWeights(*(layer.params[k + "_l0"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
    if isinstance(bad, str):
        with pytest.raises(ValueError, match=ACTIVATION_NAMES):
            lstmcore._core.rnn_forward(run[0], weights, run[2], run[3], lstmcore._core.PassOptions(), bad, True)


def test_config_repr_and_parameter_shapes():
    layer = lstmcore.RNN(3, 5, 2, nonlinearity="relu", bidirectional=True)
    assert layer.get_config()["nonlinearity"] == "relu"
    assert type(layer)(**layer.get_config()).nonlinearity == "relu"
    assert "nonlinearity='relu'" in repr(layer)
    assert layer.params["weight_ih_l0"].shape == (5, 3)
    assert layer.params["weight_ih_l1_reverse"].shape == (5, 10)
    assert layer.params["weight_hh_l1"].shape == (5, 5)
    assert layer.params["bias_hh_l0_reverse"].shape == (5,)
    bound = 1 / np.sqrt(5)
    assert all(np.abs(value).max() <= bound for value in layer.params.values())


def test_model_file_round_trip_and_fit_with_bias_free_and_reverse_layers(tmp_path):
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, size=(48, 5, 2)).astype(np.float32)
    target = x.sum(axis=(1, 2))[:, None] / 4
    first = lstmcore.RNN(2, 8, 2, nonlinearity="relu", bidirectional=True, seed=0)
    second = lstmcore.RNN(16, 4, bias=False, reverse=True, seed=2)
    model = lstmcore.Sequential([first, second, lstmcore.LastStep(), lstmcore.Dense(4, 1, seed=1)])
    history = model.fit(x, target, loss="mse", optimizer=lstmcore.optim.Adam(model.params, lr=0.02), epochs=6, verbose=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "rnn.npz"
    model.save(path)
    loaded = lstmcore.load(path)
    assert [layer.get_config() for layer in loaded.layers[:2]] == [layer.get_config() for layer in model.layers[:2]]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
