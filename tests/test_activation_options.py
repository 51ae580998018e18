"""gate_activation, activation, cell_activation and clip (ONNX's activations and clip) on
the LSTM's plain, peephole, coupled and peephole+coupled cells and the GRU (both forms): the
core against lstmcore.reference in both passes and both dtypes, finite differences, a
transcription of the ONNX operators' own equations (with P and input_forget), the defaults'
kernels unchanged, model files, and the errors. The RNN's: tests/test_rnn_activations.py."""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore
from _layer_vs_reference import reference_kind
from lstmcore import reference
from lstmcore.reference import Activations

KEYWORDS = ("gate_activation", "activation", "cell_activation")

# (layer kind, options): every activation, hard_sigmoid with ONNX's and Keras's alpha, beta,
# and clips small enough to hold many pre-activations.
CASES = [
    ("lstm", dict(gate_activation="hard_sigmoid", activation="softsign")),
    ("lstm", dict(activation="relu", cell_activation="linear", clip=0.7)),
    ("lstm", dict(gate_activation=("hard_sigmoid", 1 / 6, 0.5), cell_activation="softsign", clip=1.5)),
    ("lstm", dict(gate_activation="softsign", activation="sigmoid", cell_activation="tanh", clip=0.3)),
    ("lstm", dict(clip=0.5)),
    ("lstm", dict(peephole=True, gate_activation="softsign", cell_activation="relu", clip=0.9)),
    ("lstm", dict(peephole=True, gate_activation=("hard_sigmoid", 0.3, 0.4), activation="linear")),
    ("lstm", dict(coupled=True, activation="softsign", cell_activation="linear", clip=0.6)),
    ("lstm", dict(peephole=True, coupled=True, gate_activation="hard_sigmoid", activation="relu", clip=1.2)),
    ("lstm", dict(peephole=True, coupled=True, cell_activation="softsign")),
    ("gru", dict(gate_activation="hard_sigmoid", activation="relu")),
    ("gru", dict(gate_activation="softsign", activation="linear", clip=0.6)),
    ("gru_before", dict(gate_activation=("hard_sigmoid", 1 / 6, 0.5), activation="softsign", clip=0.4)),
    ("gru_before", dict(activation="relu", clip=0.8)),
]
IDS = [f"{kind}-{'-'.join(f'{k}={v}' for k, v in options.items())}" for kind, options in CASES]


def make(kind, options, dtype=np.float64, num_layers=1, bidirectional=False, seed=3):
    if kind == "lstm":
        return lstmcore.LSTM(5, 6, num_layers, bidirectional=bidirectional, dtype=dtype, seed=seed, **options)
    return lstmcore.GRU(
        5, 6, num_layers, bidirectional=bidirectional, dtype=dtype, seed=seed, reset_after=kind == "gru", **options
    )


def reference_options(layer):
    """The reference cell's options for a layer's activations."""
    output = getattr(layer, "cell_activation", None) or layer.activation
    acts = Activations(layer.gate_activation, layer.activation, output, clip=layer.clip)
    if isinstance(layer, lstmcore.GRU):
        return "gru", {"activations": acts, "reset_after": layer.reset_after}
    return reference_kind(layer), {"activations": acts}


def run_layer(layer, x, dy, lengths=None):
    layer.zero_grad()
    y, _, tape = layer.forward(x, lengths=lengths)
    dx, _ = layer.backward(tape, dy)
    return y, dx, {name: value.copy() for name, value in layer.grads.items()}


def run_reference(layer, x, dy):
    kind, options = reference_options(layer)
    params = {name: value.astype(np.float64) for name, value in layer.params.items()}
    y, _, cache = reference.rnn_forward(
        kind, params, x.astype(np.float64), num_layers=layer.num_layers, bidirectional=layer.bidirectional,
        options=options,
    )  # fmt: skip
    dx, _, grads = reference.rnn_backward(cache, dy.astype(np.float64))
    return y, dx, grads


def assert_all_close(got, expected, dtype):
    rtol, atol = (1e-9, 1e-11) if dtype == np.float64 else (2e-3, 2e-4)
    for (name, g), e in zip(got.items(), expected.values()):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol * max(1.0, np.abs(e).max()), err_msg=name)


def inputs(layer, batch=3, steps=7, seed=0):
    rng = np.random.default_rng(seed)
    x = (2 * rng.standard_normal((batch, steps, layer.input_size))).astype(layer.dtype)
    dy = rng.standard_normal((batch, steps, layer.num_directions * layer.hidden_size)).astype(layer.dtype)
    return x, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, options", CASES, ids=IDS)
def test_core_matches_reference_two_layers_bidirectional(kind, options, dtype):
    layer = make(kind, options, dtype, num_layers=2, bidirectional=True)
    x, dy = inputs(layer)
    y, dx, grads = run_layer(layer, x, dy)
    ry, rdx, rgrads = run_reference(layer, x, dy)
    assert_all_close({"y": y, "dx": dx}, {"y": ry, "dx": rdx}, dtype)
    assert_all_close(grads, {name: rgrads[name] for name in grads}, dtype)


@pytest.mark.parametrize("kind, options", CASES, ids=IDS)
def test_lengths_match_each_sequence_alone(kind, options):
    layer = make(kind, options, bidirectional=True)
    x, dy = inputs(layer, batch=3, steps=6)
    lengths = np.array([4, 6, 2])
    dy[np.arange(6)[None, :] >= lengths[:, None]] = 0
    y, dx, grads = run_layer(layer, x, dy, lengths)
    summed = {name: np.zeros_like(value) for name, value in grads.items()}
    for b, length in enumerate(lengths):
        ry, rdx, rgrads = run_reference(layer, x[b : b + 1, :length], dy[b : b + 1, :length])
        assert_all_close({"y": y[b : b + 1, :length], "dx": dx[b : b + 1, :length]}, {"y": ry, "dx": rdx}, np.float64)
        assert not y[b, length:].any() and not dx[b, length:].any()
        for name in summed:
            summed[name] += rgrads[name]
    assert_all_close(grads, summed, np.float64)


# One case of each cell form: plain, peephole, coupled, peephole and coupled, GRU.
FORMS = pytest.mark.parametrize("kind, options", [CASES[k] for k in (0, 5, 7, 8, 10)], ids=[IDS[k] for k in (0, 5, 7, 8, 10)])


@FORMS
def test_reverse_and_bias_free_match_the_reference_on_each_sequence(kind, options):
    layer = make(kind, {**options, "bias": False, "reverse": True})
    x, dy = inputs(layer, batch=3, steps=6)
    lengths = np.array([4, 6, 2])
    dy[np.arange(6)[None, :] >= lengths[:, None]] = 0
    y, dx, grads = run_layer(layer, x, dy, lengths)
    ref_kind, ref_options = reference_options(layer)
    params = dict(layer.params)
    for name in ("bias_ih_l0", "bias_hh_l0"):
        params[name] = np.zeros(layer.params["weight_ih_l0"].shape[0])
    summed = {name: np.zeros_like(value) for name, value in grads.items()}
    for b, length in enumerate(lengths):
        flipped = x[b : b + 1, :length][:, ::-1]
        ry, _, cache = reference.rnn_forward(
            ref_kind, params, flipped, num_layers=1, bidirectional=False, options=ref_options
        )  # fmt: skip
        rdx, _, rgrads = reference.rnn_backward(cache, dy[b : b + 1, :length][:, ::-1])
        expected = {"y": ry[:, ::-1], "dx": rdx[:, ::-1]}
        assert_all_close({"y": y[b : b + 1, :length], "dx": dx[b : b + 1, :length]}, expected, np.float64)
        for name in summed:
            summed[name] += rgrads[name]
    assert_all_close(grads, summed, np.float64)


@FORMS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_steps_carry_the_state_as_one_call_does(kind, options, dtype):
    layer = make(kind, options, dtype, num_layers=2)
    x, _ = inputs(layer)
    y, final = layer(x)
    state = None
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        np.testing.assert_allclose(y_t, y[:, t], rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    for got, expected in zip(state if isinstance(state, tuple) else [state], final if isinstance(final, tuple) else [final]):
        np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_the_clips_hold_values():
    for kind, options in CASES:
        if "clip" not in options:
            continue
        x, _ = inputs(make(kind, options))
        clipped = make(kind, options)(x)[0]
        unclipped = make(kind, {k: v for k, v in options.items() if k != "clip"})(x)[0]
        assert np.abs(clipped - unclipped).max() > 1e-3, (kind, options)


def loss_and_gradients(layer, x, weights):
    y, _, tape = layer.forward(x)
    layer.zero_grad()
    dx, _ = layer.backward(tape, weights)
    return float((y * weights).sum()), dx


@pytest.mark.parametrize("kind, options", CASES, ids=IDS)
def test_gradients_match_finite_differences(kind, options):
    # Inputs are random: none lands within eps of relu's 0, hard_sigmoid's corners or a clip's edge.
    layer = make(kind, options)
    x, weights = inputs(layer, batch=2, steps=4, seed=1)
    _, dx = loss_and_gradients(layer, x, weights)
    grads = {name: value.copy() for name, value in layer.grads.items()}
    eps = 1e-6
    rng = np.random.default_rng(2)
    names = [name for name in ("weight_ih_l0", "bias_hh_l0", "weight_peephole_l0") if name in layer.params]
    checks = [("x", x, dx)] + [(name, layer.params[name], grads[name]) for name in names]
    for name, array, analytic in checks:
        for index in zip(*(rng.integers(0, n, 6) for n in array.shape)):
            kept = array[index]
            array[index] = kept + eps
            up = loss_and_gradients(layer, x, weights)[0]
            array[index] = kept - eps
            down = loss_and_gradients(layer, x, weights)[0]
            array[index] = kept
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - analytic[index]) <= 1e-6 + 1e-5 * abs(numeric), (name, index, numeric, analytic[index])


def test_gradient_is_zero_through_a_clipped_gate():
    layer = lstmcore.LSTM(3, 4, dtype=np.float64, seed=0, clip=1e-3)
    for name in layer.params:
        layer.params[name][...] = 0
    layer.params["bias_ih_l0"][:] = 5.0  # every pre-activation held at the clip, whatever x
    x, weights = inputs(layer, batch=2, steps=3)
    layer.params["weight_ih_l0"][...] = 0.1
    _, dx = loss_and_gradients(layer, x, weights)
    assert not dx.any() and not layer.grads["weight_ih_l0"].any() and not layer.grads["bias_ih_l0"].any()


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
    if name == "Affine":
        return alpha * x + beta
    raise AssertionError(name)


def onnx_functions(activations, alphas, betas):
    """ONNX's activations attribute as functions: alpha and beta are consumed in order by the
    activations that take them."""
    taken = iter(zip(alphas, betas))
    functions = []
    for name in activations:
        alpha, beta = next(taken) if name in ("HardSigmoid", "Affine") else (None, None)
        functions.append(lambda x, name=name, alpha=alpha, beta=beta: onnx_activation(name, x, alpha, beta))
    return functions


def onnx_lstm(X, W, R, B, activations, alphas, betas, clip, P=None, input_forget=0):
    """ONNX LSTM, one direction: X [T, B, I], W [1, 4H, I] (gates i, o, f, c), R [1, 4H, H],
    B [1, 8H] (Wb then Rb), P [1, 3H] (peepholes i, o, f) or None. Returns Y [T, 1, B, H].
    clip bounds the input of f and g (the gates, peephole terms included); lstmcore reads it
    as not bounding C_t where h acts on it. input_forget=1 couples the input and forget
    gates, ft = 1 - it (onnxruntime's reading), so the f blocks of W, R, B and P go unused."""
    f, g, h = onnx_functions(activations, alphas, betas)
    hidden = R.shape[2]
    Pi, Po, Pf = np.split(P[0], 3) if P is not None else np.zeros((3, hidden))
    Ht = np.zeros((X.shape[1], hidden))
    Ct = np.zeros((X.shape[1], hidden))
    Y = []
    for Xt in X:
        pre = Xt @ W[0].T + Ht @ R[0].T + B[0, : 4 * hidden] + B[0, 4 * hidden :]
        i_in, o_in, f_in, c_in = (pre[:, k * hidden : (k + 1) * hidden] for k in range(4))
        it = f(np.clip(i_in + Pi * Ct, -clip, clip))
        ft = 1 - it if input_forget else f(np.clip(f_in + Pf * Ct, -clip, clip))
        ct = g(np.clip(c_in, -clip, clip))
        Ct = ft * Ct + it * ct
        ot = f(np.clip(o_in + Po * Ct, -clip, clip))
        Ht = ot * h(Ct)
        Y.append(Ht)
    return np.stack(Y)[:, None]


def onnx_gru(X, W, R, B, activations, alphas, betas, clip, linear_before_reset):
    """ONNX GRU, one direction: W [1, 3H, I] (gates z, r, h), R [1, 3H, H], B [1, 6H]."""
    f, g = onnx_functions(activations, alphas, betas)
    hidden = R.shape[2]
    Wb, Rb = B[0, : 3 * hidden], B[0, 3 * hidden :]
    Ht = np.zeros((X.shape[1], hidden))
    Y = []
    for Xt in X:
        x_part = Xt @ W[0].T + Wb
        zt = f(np.clip(x_part[:, :hidden] + Ht @ R[0, :hidden].T + Rb[:hidden], -clip, clip))
        rt = f(
            np.clip(x_part[:, hidden : 2 * hidden] + Ht @ R[0, hidden : 2 * hidden].T + Rb[hidden : 2 * hidden], -clip, clip)
        )
        if linear_before_reset:
            recurrent = rt * (Ht @ R[0, 2 * hidden :].T + Rb[2 * hidden :])
        else:
            recurrent = (rt * Ht) @ R[0, 2 * hidden :].T + Rb[2 * hidden :]
        ht = g(np.clip(x_part[:, 2 * hidden :] + recurrent, -clip, clip))
        Ht = (1 - zt) * ht + zt * Ht
        Y.append(Ht)
    return np.stack(Y)[:, None]


def onnx_blocks(params, order, suffix="_l0"):
    """lstmcore's (PyTorch's) parameters as ONNX's W, R, B, gate blocks reordered."""

    def reorder(a):
        blocks = np.split(a, len(order))
        return np.concatenate([blocks[k] for k in order])

    W = reorder(params["weight_ih" + suffix])[None]
    R = reorder(params["weight_hh" + suffix])[None]
    B = np.concatenate([reorder(params["bias_ih" + suffix]), reorder(params["bias_hh" + suffix])])[None]
    return W, R, B


def test_lstm_matches_the_onnx_operator_equations():
    layer = lstmcore.LSTM(
        4, 5, dtype=np.float64, seed=7, batch_first=False,
        gate_activation=("hard_sigmoid", 0.3, 0.4), activation="softsign", cell_activation="relu", clip=0.9,
    )  # fmt: skip
    X = 2 * np.random.default_rng(0).standard_normal((6, 3, 4))
    W, R, B = onnx_blocks(layer.params, order=(0, 3, 1, 2))  # i, f, g, o -> i, o, f, c
    expected = onnx_lstm(X, W, R, B, ["HardSigmoid", "Softsign", "Relu"], [0.3], [0.4], 0.9)
    np.testing.assert_allclose(layer(X)[0], expected[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("peephole, coupled", [(True, False), (False, True), (True, True)])
def test_lstm_variants_match_the_onnx_operator_equations(peephole, coupled):
    layer = lstmcore.LSTM(
        4, 5, dtype=np.float64, seed=7, batch_first=False, peephole=peephole, coupled=coupled,
        gate_activation=("hard_sigmoid", 0.3, 0.4), activation="softsign", cell_activation="relu", clip=0.9,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    X = 2 * rng.standard_normal((6, 3, 4))
    if peephole:
        layer.params["weight_peephole_l0"][...] = rng.standard_normal(layer.params["weight_peephole_l0"].shape)
    params = dict(layer.params)
    if coupled:  # lstmcore's i, g, o; ONNX's f blocks (random here) must go unused
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            i, g, o = np.split(params[name], 3)
            params[name] = np.concatenate([i, rng.standard_normal(i.shape), g, o])
    W, R, B = onnx_blocks(params, order=(0, 3, 1, 2))  # i, f, g, o -> i, o, f, c
    P = None
    if peephole:
        rows = params["weight_peephole_l0"]
        p_i, p_o, p_f = (rows[0], rows[1], rng.standard_normal(5)) if coupled else (rows[0], rows[2], rows[1])
        P = np.concatenate([p_i, p_o, p_f])[None]
    expected = onnx_lstm(X, W, R, B, ["HardSigmoid", "Softsign", "Relu"], [0.3], [0.4], 0.9, P, int(coupled))
    np.testing.assert_allclose(layer(X)[0], expected[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_matches_the_onnx_operator_equations(reset_after):
    layer = lstmcore.GRU(
        4, 5, dtype=np.float64, seed=7, batch_first=False, reset_after=reset_after,
        gate_activation=("hard_sigmoid", 1 / 6, 0.5), activation="softsign", clip=0.7,
    )  # fmt: skip
    X = 2 * np.random.default_rng(0).standard_normal((6, 3, 4))
    W, R, B = onnx_blocks(layer.params, order=(1, 0, 2))  # r, z, n -> z, r, h
    expected = onnx_gru(X, W, R, B, ["HardSigmoid", "Softsign"], [1 / 6], [0.5], 0.7, int(reset_after))
    np.testing.assert_allclose(layer(X)[0], expected[:, 0], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- defaults, traces, files, errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "cls, explicit",
    [
        (lstmcore.LSTM, dict(gate_activation="sigmoid", activation="tanh", cell_activation="tanh", clip=None)),
        (lstmcore.GRU, dict(gate_activation="sigmoid", activation="tanh", clip=None)),
        (lstmcore.GRU, dict(gate_activation="sigmoid", activation="tanh", clip=None, reset_after=False)),
    ],
)
def test_explicit_defaults_run_the_default_kernel_bit_for_bit(cls, explicit, dtype):
    plain_options = {"reset_after": False} if explicit.get("reset_after") is False else {}
    default = cls(5, 6, 2, bidirectional=True, dtype=dtype, seed=4, **plain_options)
    spelled = cls(5, 6, 2, bidirectional=True, dtype=dtype, seed=4, **explicit)
    assert spelled._chosen_activations() is None
    x, dy = inputs(default)
    for a, b in zip(run_layer(default, x, dy)[:2], run_layer(spelled, x, dy)[:2]):
        assert np.array_equal(a, b)
    assert all(np.array_equal(default.grads[k], spelled.grads[k]) for k in default.grads)


@FORMS
def test_gate_traces_hold_the_activated_gates(kind, options):
    layer = make(kind, options)
    x, _ = inputs(layer)
    ref_kind, ref_options = reference_options(layer)
    params = dict(layer.params)
    _, _, cache = reference.rnn_forward(ref_kind, params, x, num_layers=1, bidirectional=False, options=ref_options)
    gates = cache["caches"][0, 0]["gates"]  # (T, B, K, H)
    traces = layer.gate_traces(layer.forward(x)[2])[0]
    if kind != "lstm":
        names = ("reset", "update", "candidate")
    elif layer.coupled:
        names = ("input", "candidate", "output")
        np.testing.assert_allclose(traces["forget"], 1 - gates[:, :, 0], rtol=1e-12, atol=1e-14)
    else:
        names = ("input", "forget", "candidate", "output")
    for k, name in enumerate(names):
        np.testing.assert_allclose(traces[name], gates[:, :, k], rtol=1e-12, atol=1e-14)


def test_model_file_round_trip(tmp_path):
    model = lstmcore.Sequential(
        [
            lstmcore.LSTM(3, 4, gate_activation=("hard_sigmoid", 1 / 6, 0.5), cell_activation="softsign", clip=2.0),
            lstmcore.GRU(4, 5, activation="relu", clip=1.5, reset_after=False),
            lstmcore.LSTM(5, 4, peephole=True, coupled=True, activation="softsign", clip=0.8, reverse=True),
        ]
    )
    path = tmp_path / "model.lstmcore"
    model.save(path)
    loaded = lstmcore.load(path)
    assert loaded.get_config() == model.get_config()
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    assert np.array_equal(loaded(x), model(x))
    configs = [layer["config"] for layer in model.get_config()["layers"]]
    assert configs[0]["gate_activation"] == ["hard_sigmoid", 1 / 6, 0.5] and configs[0]["clip"] == 2.0
    assert configs[1]["activation"] == "relu" and configs[1]["gate_activation"] == "sigmoid"
    assert configs[2]["peephole"] and configs[2]["coupled"] and configs[2]["clip"] == 0.8
    assert loaded.layers[2].cell == "general_peephole_coupled"


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(gate_activation="gelu"), "sigmoid, tanh, relu, hard_sigmoid, linear, softsign"),
        (dict(activation=("relu", 1.0, 0.0)), "hard_sigmoid"),
        (dict(activation=("hard_sigmoid", float("nan"), 0.5)), "finite"),
        (dict(cell_activation=3), "cell_activation"),
        (dict(clip=0), "clip"),
        (dict(clip=-1.0), "clip"),
        (dict(clip=float("inf")), "clip"),
        (dict(clip=True), "clip"),
        (dict(gate_activation="linear", proj_size=2), "peephole\\+coupled cells .* not with proj_size or layer_norm"),
        (dict(clip=1.0, layer_norm=True), "peephole\\+coupled cells .* not with proj_size or layer_norm"),
        (dict(clip=1.0, peephole=True, proj_size=2), "not with proj_size or layer_norm; got \\{'clip': 1.0\\}"),
    ],
)
def test_bad_values_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        lstmcore.LSTM(3, 4, **options)


def test_gru_refuses_bad_values_and_cells_refuse_activations():
    with pytest.raises(ValueError, match="gate_activation"):
        lstmcore.GRU(3, 4, gate_activation="swish")
    with pytest.raises(ValueError, match="clip"):
        lstmcore.GRU(3, 4, clip=-2)
    with pytest.raises(ValueError, match="activation"):
        lstmcore.LSTMCell.from_layer(lstmcore.LSTM(3, 4, activation="relu"))
    with pytest.raises(ValueError, match="clip"):
        lstmcore.GRUCell.from_layer(lstmcore.GRU(3, 4, clip=1.0))


def test_model_file_header_refuses_bad_activation_values():
    from lstmcore.nn.model_files._header import KINDS

    assert KINDS["gate_activation"].accepts(["hard_sigmoid", 0.2, 0.5])
    assert not KINDS["gate_activation"].accepts(["relu", 0.2, 0.5])
    assert not KINDS["activation"].accepts("gelu")
    assert KINDS["cell_activation"].accepts(None)
    assert not KINDS["clip"].accepts(0) and not KINDS["clip"].accepts("1") and KINDS["clip"].accepts(None)
