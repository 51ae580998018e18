"""ONNX's activations and clip on the vanilla RNN (``nonlinearity`` beyond tanh and relu,
``clip``): the core against lstmcore.reference in both passes and both dtypes, finite
differences, a transcription of the ONNX RNN operator's equations, lengths, reverse,
bias=False, stacking, step(), RNNCell, model files and the command line, and the errors.
PyTorch's tanh and relu without clip: tests/test_rnn.py."""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore
from lstmcore import reference
from lstmcore.cli.main import main

# (nonlinearity, clip): every activation, hard_sigmoid with ONNX's and Keras's alpha, beta,
# PyTorch's two with a clip, and clips small enough to hold many pre-activations.
CASES = [
    ("sigmoid", None),
    ("hard_sigmoid", 0.9),
    (("hard_sigmoid", 1 / 6, 0.5), None),
    ("linear", 0.8),
    ("softsign", None),
    ("softsign", 0.5),
    ("tanh", 0.5),
    ("relu", 0.7),
]
IDS = [f"{'-'.join(map(str, n)) if isinstance(n, tuple) else n}-clip={c}" for n, c in CASES]
cases = pytest.mark.parametrize("nonlinearity, clip", CASES, ids=IDS)


def make(nonlinearity, clip, dtype=np.float64, seed=3, **options):
    return lstmcore.RNN(5, 6, dtype=dtype, seed=seed, nonlinearity=nonlinearity, clip=clip, **options)


def inputs(layer, batch=3, steps=7, seed=0):
    rng = np.random.default_rng(seed)
    x = (2 * rng.standard_normal((batch, steps, layer.input_size))).astype(layer.dtype)
    dy = rng.standard_normal((batch, steps, layer.num_directions * layer.hidden_size)).astype(layer.dtype)
    return x, dy


def run_layer(layer, x, dy, state=None, dstate=None, lengths=None):
    layer.zero_grad()
    y, h_n, tape = layer.forward(x, state, lengths=lengths)
    dx, dh0 = layer.backward(tape, dy, dstate)
    return {"y": y, "h_n": h_n, "dx": dx, "dh0": dh0}, {name: value.copy() for name, value in layer.grads.items()}


def run_reference(layer, x, dy, state=None, dstate=None, params=None):
    """The reference in float64, with the layer's parameters (or ``params``)."""
    params = {name: value.astype(np.float64) for name, value in (params or layer.params).items()}
    y, h_n, cache = reference.rnn_forward(
        "rnn", params, x.astype(np.float64), None if state is None else state.astype(np.float64),
        num_layers=layer.num_layers, bidirectional=layer.bidirectional,
        options={"nonlinearity": layer.nonlinearity, "clip": layer.clip},
    )  # fmt: skip
    dx, dh0, grads = reference.rnn_backward(cache, dy.astype(np.float64), None if dstate is None else dstate)
    return {"y": y, "h_n": h_n, "dx": dx, "dh0": dh0}, grads


def assert_all_close(got, expected, dtype):
    rtol, atol = (1e-9, 1e-11) if dtype == np.float64 else (2e-3, 2e-4)
    for name, g in got.items():
        e = expected[name]
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol * max(1.0, np.abs(e).max()), err_msg=name)


# ------------------------------------------------------------------- against the reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@cases
def test_core_matches_reference_two_layers_bidirectional(nonlinearity, clip, dtype):
    layer = make(nonlinearity, clip, dtype, num_layers=2, bidirectional=True)
    x, dy = inputs(layer)
    rng = np.random.default_rng(5)
    state = rng.standard_normal((4, 3, 6)).astype(dtype)
    dstate = rng.standard_normal((4, 3, 6)).astype(dtype)
    got, grads = run_layer(layer, x, dy, state, dstate)
    expected, r_grads = run_reference(layer, x, dy, state, dstate)
    assert_all_close(got, expected, dtype)
    assert set(grads) == set(r_grads)
    assert_all_close(grads, r_grads, dtype)


@cases
def test_lengths_match_each_sequence_alone(nonlinearity, clip):
    layer = make(nonlinearity, clip, bidirectional=True)
    x, dy = inputs(layer, batch=3, steps=6)
    lengths = np.array([4, 6, 2])
    dy[np.arange(6)[None, :] >= lengths[:, None]] = 0
    got, grads = run_layer(layer, x, dy, lengths=lengths)
    summed = {name: np.zeros_like(value) for name, value in grads.items()}
    for b, length in enumerate(lengths):
        expected, r_grads = run_reference(layer, x[b : b + 1, :length], dy[b : b + 1, :length])
        assert_all_close({"y": got["y"][b : b + 1, :length], "dx": got["dx"][b : b + 1, :length]}, expected, np.float64)
        assert_all_close({"h_n": got["h_n"][:, b : b + 1]}, expected, np.float64)
        assert not got["y"][b, length:].any() and not got["dx"][b, length:].any()
        for name in summed:
            summed[name] += r_grads[name]
    assert_all_close(grads, summed, np.float64)


@cases
def test_reverse_and_bias_free_match_the_reference_on_each_sequence(nonlinearity, clip):
    layer = make(nonlinearity, clip, bias=False, reverse=True)
    x, dy = inputs(layer, batch=3, steps=6)
    lengths = np.array([4, 6, 2])
    dy[np.arange(6)[None, :] >= lengths[:, None]] = 0
    got, grads = run_layer(layer, x, dy, lengths=lengths)
    assert "bias_ih_l0" not in layer.params
    params = dict(layer.params, bias_ih_l0=np.zeros(6), bias_hh_l0=np.zeros(6))
    summed = {name: np.zeros_like(value) for name, value in grads.items()}
    for b, length in enumerate(lengths):
        flipped_x, flipped_dy = x[b : b + 1, :length][:, ::-1], dy[b : b + 1, :length][:, ::-1]
        expected, r_grads = run_reference(layer, flipped_x, flipped_dy, params=params)
        flipped_back = {"y": expected["y"][:, ::-1], "dx": expected["dx"][:, ::-1]}
        assert_all_close({"y": got["y"][b : b + 1, :length], "dx": got["dx"][b : b + 1, :length]}, flipped_back, np.float64)
        for name in summed:
            summed[name] += r_grads[name]
    assert_all_close(grads, summed, np.float64)


# ------------------------------------------------------------------- gradients


def loss_and_gradients(layer, x, weights, state):
    y, h_n, tape = layer.forward(x, state)
    layer.zero_grad()
    dx, dh0 = layer.backward(tape, weights, h_n)  # loss = sum(y * weights) + sum(h_n^2) / 2
    return float((y * weights).sum() + (h_n**2).sum() / 2), dx, dh0


@cases
def test_gradients_match_finite_differences(nonlinearity, clip):
    # Inputs are random: none lands within eps of relu's 0, hard_sigmoid's corners or a clip's edge.
    layer = make(nonlinearity, clip, num_layers=2)
    x, weights = inputs(layer, batch=2, steps=4, seed=1)
    state = np.random.default_rng(4).standard_normal((2, 2, 6))
    _, dx, dh0 = loss_and_gradients(layer, x, weights, state)
    grads = {name: value.copy() for name, value in layer.grads.items()}
    eps = 1e-6
    rng = np.random.default_rng(2)
    checks = [("x", x, dx), ("h0", state, dh0)] + [(name, layer.params[name], grads[name]) for name in layer.params]
    for name, array, analytic in checks:
        for index in zip(*(rng.integers(0, n, 4) for n in array.shape)):
            kept = array[index]
            array[index] = kept + eps
            up = loss_and_gradients(layer, x, weights, state)[0]
            array[index] = kept - eps
            down = loss_and_gradients(layer, x, weights, state)[0]
            array[index] = kept
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - analytic[index]) <= 1e-6 + 1e-5 * abs(numeric), (name, index, numeric, analytic[index])


def test_the_clips_hold_values():
    for nonlinearity, clip in CASES:
        if clip is None:
            continue
        x, _ = inputs(make(nonlinearity, clip))
        clipped, unclipped = make(nonlinearity, clip)(x)[0], make(nonlinearity, None)(x)[0]
        assert np.abs(clipped - unclipped).max() > 1e-3, (nonlinearity, clip)


def test_gradient_is_zero_through_a_clipped_pre_activation():
    layer = lstmcore.RNN(3, 4, dtype=np.float64, seed=0, nonlinearity="linear", clip=1e-3)
    layer.params["bias_ih_l0"][:] = 50.0  # every pre-activation beyond the clip, whatever x and h
    x, dy = inputs(layer, batch=2, steps=3)
    y, _, tape = layer.forward(x)
    layer.zero_grad()
    dx, dh0 = layer.backward(tape, dy)
    assert np.all(y == 1e-3)
    assert not dx.any() and not dh0.any() and not any(grad.any() for grad in layer.grads.values())


def test_tanh_through_the_chosen_path_is_the_fused_kernels():
    # A clip no value reaches runs tanh on the chosen path; the fused kernel must agree.
    fused, chosen = make("tanh", None, num_layers=2), make("tanh", 1e300, num_layers=2)
    x, dy = inputs(fused)
    (a, a_grads), (b, b_grads) = run_layer(fused, x, dy), run_layer(chosen, x, dy)
    assert_all_close(a, b, np.float64)
    assert_all_close(a_grads, b_grads, np.float64)


# ------------------------------------------------------------------- ONNX's equations


def onnx_activation(name, x, alpha=None, beta=None):
    """ONNX's activation functions by the operator's own names."""
    if name == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "Tanh":
        return np.tanh(x)
    if name == "Relu":
        return np.maximum(0, x)
    if name == "HardSigmoid":
        return np.minimum(np.maximum(alpha * x + beta, 0), 1)
    if name == "Softsign":
        return x / (1 + np.abs(x))
    raise AssertionError(name)


def onnx_rnn(X, W, R, B, activation, alpha, beta, clip, direction="forward"):
    """ONNX RNN, one direction: X [T, B, I], W [1, H, I], R [1, H, H], B [1, 2H] (Wb then
    Rb). Ht = f(clip(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi)). Returns Y [T, 1, B, H]; the
    reverse direction runs over X from its last step and stores Y in X's order."""
    hidden = R.shape[2]
    Ht = np.zeros((X.shape[1], hidden))
    Y = np.empty((X.shape[0], 1, X.shape[1], hidden))
    order = range(X.shape[0]) if direction == "forward" else reversed(range(X.shape[0]))
    for t in order:
        pre = X[t] @ W[0].T + Ht @ R[0].T + B[0, :hidden] + B[0, hidden:]
        Ht = onnx_activation(activation, np.clip(pre, -clip, clip), alpha, beta)
        Y[t, 0] = Ht
    return Y


@pytest.mark.parametrize(
    "nonlinearity, onnx_name, alpha, beta",
    [
        (("hard_sigmoid", 0.3, 0.4), "HardSigmoid", 0.3, 0.4),
        ("hard_sigmoid", "HardSigmoid", 0.2, 0.5),
        ("softsign", "Softsign", None, None),
        ("sigmoid", "Sigmoid", None, None),
        ("relu", "Relu", None, None),
        ("tanh", "Tanh", None, None),
    ],
)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_rnn_matches_the_onnx_operator_equations(nonlinearity, onnx_name, alpha, beta, reverse):
    layer = lstmcore.RNN(
        4, 5, dtype=np.float64, seed=7, batch_first=False, nonlinearity=nonlinearity, clip=0.9, reverse=reverse
    )
    X = 2 * np.random.default_rng(0).standard_normal((6, 3, 4))
    W, R = layer.params["weight_ih_l0"][None], layer.params["weight_hh_l0"][None]
    B = np.concatenate([layer.params["bias_ih_l0"], layer.params["bias_hh_l0"]])[None]
    expected = onnx_rnn(X, W, R, B, onnx_name, alpha, beta, 0.9, "reverse" if reverse else "forward")
    np.testing.assert_allclose(layer(X)[0], expected[:, 0], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- steps, cells, files, errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity, clip", CASES[:2] + CASES[5:6], ids=IDS[:2] + IDS[5:6])
def test_steps_carry_the_state_as_one_call_does(nonlinearity, clip, dtype):
    layer = make(nonlinearity, clip, dtype, num_layers=2)
    x, _ = inputs(layer)
    y, h_n = layer(x)
    h = None
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for t in range(x.shape[1]):
        y_t, h = layer.step(x[:, t], h)
        np.testing.assert_allclose(y_t, y[:, t], **tol)
    np.testing.assert_allclose(h, h_n, **tol)


def test_an_rnn_cell_keeps_nonlinearity_and_clip():
    cell = lstmcore.RNNCell(3, 5, nonlinearity=("hard_sigmoid", 0.3, 0.4), clip=1.5, dtype=np.float64, seed=1)
    assert repr(cell) == "RNNCell(3, 5, nonlinearity=('hard_sigmoid', 0.3, 0.4), clip=1.5, dtype=float64)"
    layer = cell.to_layer()
    assert layer.nonlinearity == ("hard_sigmoid", 0.3, 0.4) and layer.clip == 1.5
    again = lstmcore.RNNCell.from_layer(layer)
    assert again.nonlinearity == cell.nonlinearity and again.clip == 1.5
    x, h = np.random.default_rng(3).normal(size=(2, 4, 3)), np.random.default_rng(4).normal(size=(4, 5))
    _, h_n = layer(x.transpose(1, 0, 2), h[None])
    got = h
    for step in x:
        got = cell(step, got)
    np.testing.assert_allclose(got, h_n[0], rtol=1e-12, atol=1e-14)
    _, tape = cell.forward(x[0], h)
    dx, dh = cell.backward(tape, np.ones((4, 5)))
    _, _, layer_tape = layer.forward(x[:1].transpose(1, 0, 2), h[None])
    layer.zero_grad()
    ldx, ldh = layer.backward(layer_tape, np.zeros((4, 1, 5)), np.ones((1, 4, 5)))
    np.testing.assert_allclose(dx, ldx[:, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dh, ldh[0], rtol=1e-12, atol=1e-14)


def test_model_file_round_trip(tmp_path):
    model = lstmcore.Sequential(
        [
            lstmcore.RNN(3, 4, nonlinearity=("hard_sigmoid", 1 / 6, 0.5), clip=2.0, bidirectional=True),
            lstmcore.RNN(8, 5, nonlinearity="softsign", reverse=True, bias=False),
            lstmcore.RNN(5, 4, nonlinearity="relu", clip=0.5),
        ]
    )
    path = tmp_path / "model.lstmcore"
    model.save(path)
    loaded = lstmcore.load(path)
    assert loaded.get_config() == model.get_config()
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    assert np.array_equal(loaded(x), model(x))
    configs = [layer["config"] for layer in model.get_config()["layers"]]
    assert configs[0]["nonlinearity"] == ["hard_sigmoid", 1 / 6, 0.5] and configs[0]["clip"] == 2.0
    assert configs[1]["nonlinearity"] == "softsign" and configs[1]["clip"] is None
    assert loaded.layers[0].nonlinearity == ("hard_sigmoid", 1 / 6, 0.5)


def test_the_command_line_inspects_a_model_with_chosen_activations(tmp_path, capsys):
    model = lstmcore.Sequential([lstmcore.RNN(2, 3, nonlinearity="softsign", clip=0.5, seed=0), lstmcore.Dense(3, 1, seed=0)])
    model.save(tmp_path / "rnn.npz")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32))
    assert main(["inspect", str(tmp_path / "rnn.npz"), str(tmp_path / "x.npy")]) == 0
    out, err = capsys.readouterr()
    assert "hidden" in out and "Traceback" not in out + err


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(nonlinearity="gelu"), "sigmoid, tanh, relu, hard_sigmoid, linear, softsign, got 'gelu'"),
        (dict(nonlinearity=("relu", 1.0, 0.0)), "hard_sigmoid"),
        (dict(nonlinearity=("hard_sigmoid", float("inf"), 0.5)), "finite"),
        (dict(clip=0), "clip"),
        (dict(clip=-1.0), "clip"),
        (dict(clip=float("nan")), "clip"),
        (dict(clip="1"), "clip"),
    ],
)
def test_bad_values_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        lstmcore.RNN(3, 4, **options)
    with pytest.raises(ValueError, match=message):
        lstmcore.RNNCell(3, 4, **options)


def test_the_core_refuses_bad_values():
    layer = lstmcore.RNN(2, 3)
    weights = lstmcore._core.RnnWeights(*(layer.params[k + "_l0"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
    x, h0, y = np.zeros((1, 1, 2), np.float32), np.zeros((1, 3), np.float32), np.zeros((1, 1, 3), np.float32)
    options = lstmcore._core.PassOptions()
    for nonlinearity, clip, message in [
        ("tanh", -1.0, "clip"),
        ("tanh", float("inf"), "clip"),
        (("hard_sigmoid", float("nan"), 0.5), 0.0, "finite"),
        (("gelu", 0.2, 0.5), 0.0, "among"),
    ]:
        with pytest.raises(ValueError, match=message):
            lstmcore._core.rnn_forward(x, weights, h0, y, options, nonlinearity, True, clip=clip)


def test_model_file_header_accepts_every_nonlinearity_and_refuses_others():
    from lstmcore.nn.model_files._header import KINDS

    assert KINDS["nonlinearity"].accepts("softsign") and KINDS["nonlinearity"].accepts(["hard_sigmoid", 0.2, 0.5])
    assert not KINDS["nonlinearity"].accepts("gelu") and not KINDS["nonlinearity"].accepts(["relu", 0.2, 0.5])
