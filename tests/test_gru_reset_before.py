"""GRU(reset_after=False), the original GRU of Cho et al. 2014 (ONNX's default,
linear_before_reset=0), against the NumPy reference, finite differences and ONNX's own
equations; and the default reset_after=True unchanged by the option.

Tolerances (tests/README.md): float64 against the reference 1e-12, float32 1e-5 (the
reference in float64 on the same float32 inputs), both scaled by the tensor's largest
magnitude; finite differences in float64 as _compare.py states them.
"""

import numpy as np
import pytest

import lstmcore
from _compare import FD_ATOL, FD_RTOL, assert_close, numerical_gradient, sample_indices, scaled_atol
from _layers import input_size_past_dx_threshold, pass_split
from lstmcore.reference import rnn_backward, rnn_forward

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
BEFORE = {"reset_after": False}


def gru(input_size, hidden, dtype, seed, **options):
    """A 2-layer bidirectional time-major GRU whose weights are moved off the initialisation."""
    layer = lstmcore.GRU(
        input_size, hidden, 2, bidirectional=True, batch_first=False, dtype=dtype, seed=seed, reset_after=False, **options
    )
    rng = np.random.default_rng(seed + 100)
    for value in layer.params.values():
        value[...] = rng.uniform(-0.6, 0.6, value.shape)
    return layer


def reference(layer, x, h0, dy, dh_n):
    """y, h_n and every gradient of the reference on the layer's own parameters (float64)."""
    params = {name: value.astype(np.float64) for name, value in layer.params.items()}
    y, h_n, cache = rnn_forward(
        "gru", params, x.astype(np.float64), h0.astype(np.float64), num_layers=layer.num_layers,
        bidirectional=layer.bidirectional, batch_first=layer.batch_first, options=BEFORE,
    )  # fmt: skip
    dx, dh0, grads = rnn_backward(cache, dy.astype(np.float64), dh_n.astype(np.float64))
    return {"y": y, "h_n": h_n, "dx": dx, "dh0": dh0, **grads}


def layer_results(layer, x, h0, dy, dh_n, lengths=None):
    layer.zero_grad()
    y, h_n, tape = layer.forward(x, h0, lengths=lengths)
    dx, dh0 = layer.backward(tape, dy, dh_n)
    return {"y": y, "h_n": h_n, "dx": dx, "dh0": dh0, **{name: grad.copy() for name, grad in layer.grads.items()}}


def inputs(layer, steps, batch, seed):
    rng = np.random.default_rng(seed)
    directions = layer.num_directions
    x = rng.normal(size=(steps, batch, layer.input_size)).astype(layer.dtype)
    h0, dh_n = (rng.normal(size=(2 * directions, batch, layer.hidden_size)).astype(layer.dtype) for _ in range(2))
    dy = rng.normal(size=(steps, batch, directions * layer.hidden_size)).astype(layer.dtype)
    return x, h0, dy, dh_n


def check_all(got, expected, dtype, where=""):
    tol = TOLERANCE[dtype]
    for name, value in expected.items():
        assert got[name].dtype == dtype, f"{name} is {got[name].dtype}"
        assert_close(f"{name}{where}", got[name], value, tol, scaled_atol(tol, value))


# steps, batch, input, hidden, the split the core plans on two threads: one thread; two
# threads over units (a barrier between r * h_{t-1} and W_hn's product); over the batch;
# two rows (W read in place).
SHAPES = {
    "one-thread": (5, 3, 4, 7, (1, "units")),
    "units-split": (4, 6, 16, 96, (2, "units")),
    "batch-split": (4, 40, 16, 48, (2, "batch")),
    "two-rows": (2, 1, 3, 5, (1, "units")),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_forward_and_backward_match_the_reference(dtype, shape, two_threads):
    steps, batch, input_size, hidden, split = shape
    assert pass_split(batch, input_size, hidden, 3, dtype, False) == split
    layer = gru(input_size, hidden, dtype, seed=1)
    x, h0, dy, dh_n = inputs(layer, steps, batch, seed=2)
    check_all(layer_results(layer, x, h0, dy, dh_n), reference(layer, x, h0, dy, dh_n), dtype)
    y, h_n = layer(x, h0)  # inference keeps no tape, and writes the same values
    expected = reference(layer, x, h0, dy, dh_n)
    check_all({"y": y, "h_n": h_n}, {"y": expected["y"], "h_n": expected["h_n"]}, dtype, " (inference)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("batch, hidden", [(7, 5), (12, 96), (40, 48)], ids=["one-thread", "units-split", "batch-split"])
def test_lengths_match_the_reference_per_sequence(dtype, batch, hidden, two_threads):
    # Unsorted lengths; the reverse direction of each sequence starts at its own last step.
    steps, input_size = 6, 4
    lengths = np.array([(1 + 5 * b) % steps + 1 for b in range(batch)])
    layer = gru(input_size, hidden, dtype, seed=3)
    x, h0, dy, dh_n = inputs(layer, steps, batch, seed=4)
    got = layer_results(layer, x, h0, dy, dh_n, lengths=lengths)
    summed = {name: np.zeros(value.shape) for name, value in layer.params.items()}
    for b, length in enumerate(lengths):
        part = (slice(None, length), slice(b, b + 1))
        expected = reference(layer, x[part], h0[:, b : b + 1], dy[part], dh_n[:, b : b + 1])
        where = f" [seq {b}, length {length}]"
        check_all(
            {"y": got["y"][part], "h_n": got["h_n"][:, b : b + 1], "dx": got["dx"][part], "dh0": got["dh0"][:, b : b + 1]},
            {name: expected[name] for name in ("y", "h_n", "dx", "dh0")},
            dtype,
            where,
        )
        np.testing.assert_array_equal(got["y"][length:, b], 0, err_msg=f"y past the length{where}")
        np.testing.assert_array_equal(got["dx"][length:, b], 0, err_msg=f"dx past the length{where}")
        for name in summed:
            summed[name] += expected[name]
    check_all({name: got[name] for name in summed}, summed, dtype, " (summed over sequences)")


@pytest.mark.parametrize("batch, split", [(9, "units"), (16, "batch")], ids=["units-split", "batch-split"])
def test_matches_the_reference_when_dx_is_one_product_after_the_loop(batch, split, two_threads):
    # As in test_core_matches_reference.py: W_ih's slice past 4 MB a thread makes dx one
    # product after the loop, which reads every step's complete gate gradients. float64,
    # one layer-direction pair, x scaled by 1/sqrt(I) to keep pre-activations of order one.
    hidden = 96
    input_size = input_size_past_dx_threshold(3, hidden, np.float64, threads=2 if split == "units" else 1)
    assert lstmcore._core.diagnostics.pass_plan(batch, input_size, hidden, 3, 8, True) == (2, split)
    assert lstmcore._core.diagnostics.dx_after_the_loop(batch, input_size, hidden, 3, 8) == (True, True)
    layer = lstmcore.GRU(
        input_size, hidden, bidirectional=True, batch_first=False, dtype=np.float64, seed=21, reset_after=False
    )
    x, _, dy, _ = inputs(layer, 5, batch, seed=22)
    x *= input_size**-0.5
    rng = np.random.default_rng(23)
    h0, dh_n = (rng.normal(size=(2, batch, hidden)) for _ in range(2))
    check_all(layer_results(layer, x, h0, dy, dh_n), reference(layer, x, h0, dy, dh_n), np.float64)


def test_eight_threads_agree_with_one(restore_num_threads):
    # Eight threads over 200 units (a ragged last slice), each pass split over units: every
    # step's r * h_{t-1} (forward) and da_n, da_r (backward) cross between all of them.
    layer = gru(64, 200, np.float64, seed=5)
    x, h0, dy, dh_n = inputs(layer, 3, 6, seed=6)
    lstmcore.set_num_threads(8)
    assert pass_split(6, 64, 200, 3, np.float64, False) == (8, "units")
    assert pass_split(6, 64, 200, 3, np.float64, True) == (8, "units")
    many = layer_results(layer, x, h0, dy, dh_n)
    lstmcore.set_num_threads(1)
    one = layer_results(layer, x, h0, dy, dh_n)
    check_all(many, one, np.float64, " (8 threads vs 1)")


@pytest.fixture
def restore_num_threads():
    previous = lstmcore.get_num_threads()
    yield
    lstmcore.set_num_threads(previous)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["whole", "lengths"])
def test_backward_matches_finite_differences(with_lengths):
    rng = np.random.default_rng(7)
    layer = gru(3, 4, np.float64, seed=8)
    x, h0, dy, dh_n = inputs(layer, 4, 3, seed=9)
    lengths = np.array([2, 4, 1]) if with_lengths else None

    def loss():
        y, h_n, _ = layer.forward(x, h0, lengths=lengths)
        return np.sum(y * dy) + np.sum(h_n * dh_n)

    got = layer_results(layer, x, h0, dy, dh_n, lengths=lengths)
    assert_close("dx", got["dx"], numerical_gradient(loss, x), FD_RTOL, FD_ATOL)
    assert_close("dh0", got["dh0"], numerical_gradient(loss, h0), FD_RTOL, FD_ATOL)
    for name, value in layer.params.items():
        indices = sample_indices(value.shape, 6, rng)
        estimate = numerical_gradient(loss, value, indices)
        sampled = np.full(value.shape, np.nan)
        for index in indices:
            sampled[index] = got[name][index]
        assert_close(name, sampled, estimate, FD_RTOL, FD_ATOL, equal_nan=True)


def test_reference_backward_matches_its_finite_differences():
    rng = np.random.default_rng(18)
    hidden = 4
    params = {
        "weight_ih_l0": rng.uniform(-0.8, 0.8, (3 * hidden, 3)),
        "weight_hh_l0": rng.uniform(-0.8, 0.8, (3 * hidden, hidden)),
        "bias_ih_l0": rng.uniform(-0.8, 0.8, 3 * hidden),
        "bias_hh_l0": rng.uniform(-0.8, 0.8, 3 * hidden),
    }
    x, h0 = rng.normal(size=(4, 2, 3)), rng.normal(size=(1, 2, hidden))
    dy, dh_n = rng.normal(size=(4, 2, hidden)), rng.normal(size=(1, 2, hidden))
    run = dict(num_layers=1, bidirectional=False, batch_first=False, options=BEFORE)

    def loss():
        y, h_n, _ = rnn_forward("gru", params, x, h0, **run)
        return np.sum(y * dy) + np.sum(h_n * dh_n)

    _, _, cache = rnn_forward("gru", params, x, h0, **run)
    dx, dh0, grads = rnn_backward(cache, dy, dh_n)
    assert_close("dx", dx, numerical_gradient(loss, x), FD_RTOL, FD_ATOL)
    assert_close("dh0", dh0, numerical_gradient(loss, h0), FD_RTOL, FD_ATOL)
    for name, value in params.items():
        assert_close(name, grads[name], numerical_gradient(loss, value), FD_RTOL, FD_ATOL)


def onnx_gru(X, W, R, B, initial_h):
    """ONNX's GRU operator, forward direction, linear_before_reset=0, default activations,
    transcribed from its equations in its own terms: gates z, r, h; X (seq, batch, input),
    W (1, 3H, input), R (1, 3H, H), B (1, 6H) = [Wb, Rb], initial_h (1, batch, H).

        zt = f(Xt*(Wz^T) + Ht-1*(Rz^T) + Wbz + Rbz)
        rt = f(Xt*(Wr^T) + Ht-1*(Rr^T) + Wbr + Rbr)
        ht = g(Xt*(Wh^T) + (rt (.) Ht-1)*(Rh^T) + Rbh + Wbh)
        Ht = (1 - zt) (.) ht + zt (.) Ht-1
    """
    f = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    g = np.tanh
    Wz, Wr, Wh = np.split(W[0], 3)
    Rz, Rr, Rh = np.split(R[0], 3)
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = np.split(B[0], 6)
    H_prev = initial_h[0]
    Y = []
    for Xt in X:
        zt = f(Xt @ Wz.T + H_prev @ Rz.T + Wbz + Rbz)
        rt = f(Xt @ Wr.T + H_prev @ Rr.T + Wbr + Rbr)
        ht = g(Xt @ Wh.T + (rt * H_prev) @ Rh.T + Rbh + Wbh)
        H_prev = (1 - zt) * ht + zt * H_prev
        Y.append(H_prev)
    return np.stack(Y)[:, None], H_prev[None]  # Y (seq, num_directions, batch, H), Y_h


def test_forward_matches_onnx_gru_equations():
    steps, batch, input_size, hidden = 5, 3, 4, 6
    layer = lstmcore.GRU(input_size, hidden, batch_first=False, dtype=np.float64, seed=10, reset_after=False)
    rng = np.random.default_rng(11)
    for value in layer.params.values():
        value[...] = rng.uniform(-0.7, 0.7, value.shape)
    x = rng.normal(size=(steps, batch, input_size))
    h0 = rng.normal(size=(1, batch, hidden))
    p = dict(layer.params)

    def onnx_order(rows):  # lstmcore's (and PyTorch's) r, z, n -> ONNX's z, r, h
        r, z, n = np.split(rows, 3)
        return np.concatenate([z, r, n])

    W = onnx_order(p["weight_ih_l0"])[None]
    R = onnx_order(p["weight_hh_l0"])[None]
    B = np.concatenate([onnx_order(p["bias_ih_l0"]), onnx_order(p["bias_hh_l0"])])[None]
    Y, Y_h = onnx_gru(x, W, R, B, h0)
    y, h_n = layer(x, h0)
    assert_close("y", y, Y[:, 0], 1e-12, scaled_atol(1e-12, Y))
    assert_close("h_n", h_n, Y_h, 1e-12, scaled_atol(1e-12, Y_h))
    # PyTorch's form (reset_after=True) is another function of the same weights.
    after = lstmcore.GRU(input_size, hidden, batch_first=False, dtype=np.float64)
    for name, value in p.items():
        after.params[name][...] = value
    y_after, _ = after(x, h0)
    assert np.max(np.abs(y_after - Y[:, 0])) > 1e-3


def test_model_file_keeps_reset_after(tmp_path):
    layer = lstmcore.GRU(3, 5, 2, bidirectional=True, seed=12, reset_after=False)
    model = lstmcore.Sequential([layer, lstmcore.Dense(10, 2, seed=13)])
    path = tmp_path / "gru.lstmcore"
    model.save(path)
    loaded = lstmcore.load(path)
    assert loaded.layers[0].reset_after is False
    assert loaded.get_config() == model.get_config()
    x = np.random.default_rng(14).normal(size=(2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))


def test_reset_after_is_in_the_config_and_true_by_default():
    assert lstmcore.GRU(2, 3).reset_after is True
    assert lstmcore.GRU(2, 3).get_config()["reset_after"] is True
    assert lstmcore.GRU(2, 3, reset_after=False).get_config()["reset_after"] is False
    with pytest.raises(TypeError, match="reset_after as a bool, got str"):
        lstmcore.GRU(2, 3, reset_after="no")


def test_default_is_the_reset_after_kernel_bit_for_bit():
    # The default call and an explicit reset_after=True run the same kernel; reset-before
    # is another function of the same weights.
    rng = np.random.default_rng(15)
    core = lstmcore._core
    x = rng.normal(size=(4, 3, 5)).astype(np.float32)
    weights = core.GruWeights(*(rng.normal(size=s).astype(np.float32) for s in [(18, 5), (18, 6), (18,), (18,)]))
    h0 = rng.normal(size=(3, 6)).astype(np.float32)
    outputs = {}
    for key, option in {"default": {}, "after": {"reset_after": True}, "before": {"reset_after": False}}.items():
        outputs[key] = np.zeros((4, 3, 6), np.float32)
        tape = core.gru_forward(x, weights, h0, outputs[key], core.PassOptions(batch_first=False), True, **option)
        assert tape.reset_after is (key != "before")
    np.testing.assert_array_equal(outputs["default"], outputs["after"])
    assert np.max(np.abs(outputs["before"] - outputs["after"])) > 1e-3


def test_gate_traces_are_the_reference_gates():
    layer = lstmcore.GRU(3, 4, batch_first=False, dtype=np.float64, seed=16, reset_after=False)
    x = np.random.default_rng(17).normal(size=(5, 2, 3))
    _, _, traces = layer(x, return_gates=True)
    params = dict(layer.params)
    _, _, cache = rnn_forward("gru", params, x, None, num_layers=1, bidirectional=False, batch_first=False, options=BEFORE)
    gates = cache["caches"][0, 0]["gates"]  # (T, B, 3, H): r, z, n
    for k, name in enumerate(("reset", "update", "candidate")):
        assert_close(name, traces[0][name], gates[:, :, k], 1e-12, 1e-12)


@pytest.mark.parametrize("batch", [1, 3], ids=["B1-in-place", "B3"])
def test_streaming_steps_equal_one_call(batch):
    # One or two rows a step multiply W where it lies (multiply_unpacked), more are packed.
    layer = lstmcore.GRU(3, 5, 2, batch_first=False, dtype=np.float64, seed=19, reset_after=False)
    x, h0, _, _ = inputs(layer, 6, batch, seed=20)
    y, h_n = layer(x, h0)
    state = h0
    for t in range(x.shape[0]):
        y_t, state = layer.step(x[t], state)
        assert_close(f"y[{t}]", y_t, y[t], 1e-12, 1e-12)
    assert_close("h_n", state, h_n, 1e-12, 1e-12)


def test_gru_cell_refuses_a_reset_before_layer():
    # GRUCell is PyTorch's nn.GRUCell (reset after W_hn): converting would change the function.
    with pytest.raises(ValueError, match="reset_after"):
        lstmcore.GRUCell.from_layer(lstmcore.GRU(3, 4, reset_after=False))
    assert lstmcore.GRUCell.from_layer(lstmcore.GRU(3, 4)).hidden_size == 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_bias_free_reverse_layer_is_the_reference_on_each_sequence_flipped(dtype):
    # bias=False runs the core on zero biases; reverse=True runs each sequence from its
    # own last step, which for the reference is the sequence flipped within its length.
    layer = lstmcore.GRU(3, 5, 2, batch_first=False, dtype=dtype, seed=24, bias=False, reverse=True, reset_after=False)
    rng = np.random.default_rng(25)
    for value in layer.params.values():
        value[...] = rng.uniform(-0.6, 0.6, value.shape)
    lengths = np.array([4, 2, 5, 1])
    x = rng.normal(size=(5, 4, 3)).astype(dtype)
    h0, dh_n = (rng.normal(size=(2, 4, 5)).astype(dtype) for _ in range(2))
    dy = rng.normal(size=(5, 4, 5)).astype(dtype)
    got = layer_results(layer, x, h0, dy, dh_n, lengths=lengths)
    params = {name: value.astype(np.float64) for name, value in layer.params.items()}
    for layer_index in range(2):
        for name in ("bias_ih", "bias_hh"):
            params[f"{name}_l{layer_index}"] = np.zeros(15)
    run = dict(num_layers=2, bidirectional=False, batch_first=False, options=BEFORE)
    summed = {name: np.zeros(value.shape) for name, value in layer.params.items()}
    tol = TOLERANCE[dtype]
    for b, length in enumerate(lengths):
        part = (slice(None, length), slice(b, b + 1))
        y, h_n, cache = rnn_forward("gru", params, x[part][::-1].astype(np.float64), h0[:, b : b + 1], **run)
        dx, dh0, grads = rnn_backward(cache, dy[part][::-1].astype(np.float64), dh_n[:, b : b + 1].astype(np.float64))
        where = f" [seq {b}, length {length}]"
        for name, value, expected in (
            ("y", got["y"][part], y[::-1]),
            ("h_n", got["h_n"][:, b : b + 1], h_n),
            ("dx", got["dx"][part], dx[::-1]),
            ("dh0", got["dh0"][:, b : b + 1], dh0),
        ):
            assert_close(name + where, value, expected, tol, scaled_atol(tol, expected))
        for name in summed:
            summed[name] += grads[name]
    for name, expected in summed.items():
        assert_close(name, got[name], expected, tol, scaled_atol(tol, expected))
