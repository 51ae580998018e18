"""The LSTM variants (peephole, coupled, layer_norm, proj_size, forget_bias, recurrent
dropout, zoneout, dropout between layers) against lstmcore.reference, finite differences,
PyTorch's proj_size and identities of their own; and the option checks.

Tolerances, as |got - expected| <= tol * scale + tol * |expected|, scale = max(1, max|expected|)
of the tensor (tests/_compare.py; the convention of tests/test_core_matches_reference.py):
- float64, 1e-12: the core and the reference evaluate the same expressions in another
  order, so only rounding differs (a few 1.1e-16 per operation over <= 6 steps, 2 layers);
  observed <= 8.2e-14 for layer norm (its divisions by a row's std amplify rounding) and
  <= 7e-16 for the other variants.
- float32, 1e-5: the layer in float32 against the reference in float64 on the same float32
  inputs; the reasoning of tests/test_core_matches_reference.py holds unchanged for the
  peephole, coupled, projected and regularised cells (an extra diagonal product, a P x H
  projection, masks that are exact in float32); observed <= 2.8e-7 (2.3 eps32).
- float32 with layer_norm: 1e-5 plus 3 times the error (same measure) of the reference
  evaluated in float32 on the same inputs. Each normalisation divides by the standard
  deviation of one row (4H pre-activations or H cells), and the backward subtracts the
  row's means from the gradient, so how much float32 rounding grows depends on the data:
  on these inputs a plain float32 evaluation of the equations (the NumPy reference) is off
  from float64 by up to 1.3e-4 (T6-H11, given state) and the layer by up to 4.1e-5 (its
  statistics are summed in double). A fixed bound would be loose where the problem is well
  conditioned; this one asks the layer to be about as accurate as float32 allows. Over
  125 random cases the layer never needed more than 1e-5 + 1.7 times the float32
  reference's error; a wrong term is O(0.1).
- Finite differences (float64, eps = 1e-6): rtol 1e-6, atol 1e-7, as tests/test_gradcheck.py
  (truncation ~1e-12, rounding ~1e-9 for losses of order 10; observed <= 3.3e-9).
"""

import copy

import numpy as np
import pytest

import lstmcore
from _compare import FD_ATOL, FD_RTOL, assert_close, scaled_atol
from _layer_vs_reference import (
    FLOAT32_TOLERANCE,
    FLOAT64_TOLERANCE,
    assert_gradients_match_finite_differences,
    assert_matches_reference,
    make_layer,
    random_inputs,
    run_both,
)
from _layers import input_size_past_dx_threshold
from _variants import checked_table, dtypes, option_table, variant_options, variants

# Layer options per variant; proj_size "half" is H // 2 (proj_size must be below H).
VARIANTS = option_table(
    "peephole", "coupled", "peephole_coupled", "layer_norm", "projected", "peephole_projected", "coupled_projected",
    "peephole_coupled_projected", "forget_bias", proj_size="half",
)  # fmt: skip
# (steps, batch, input_size, hidden, num_layers, bidirectional, batch_first): H not a
# multiple of 8 (the SIMD width), I != H.
SHAPES = {
    "T1-B1-H5": (1, 1, 3, 5, 1, False, True),
    "H13-L2-bidir-time-major": (4, 3, 7, 13, 2, True, False),
    "T6-H11-L2-bidir": (6, 2, 4, 11, 2, True, True),
}
CELLS = option_table("lstm", "peephole", "coupled", "peephole_coupled")
REGULARIZERS = checked_table({
    "recurrent_dropout": {"recurrent_dropout": 0.3},
    "zoneout": {"zoneout": 0.4},
    "zoneout_recurrent_dropout_dropout": {"recurrent_dropout": 0.25, "zoneout": 0.3, "dropout": 0.4},
})  # fmt: skip


# ----------------------------------------------------------------- against the reference


@variants(*VARIANTS)
@dtypes
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state-and-dstate"])
def test_variant_forward_and_backward_match_reference(variant, dtype, shape, with_state):
    layer = make_layer(shape, VARIANTS[variant], dtype, seed=3)
    rng = np.random.default_rng(30)
    x, state, dy, dstate = random_inputs(layer, shape[0], shape[1], rng, with_state, with_state)
    got, expected, expected_in_dtype = run_both(layer, x, state, dy, dstate)
    assert_matches_reference(layer, got, expected, expected_in_dtype)


@variants(*CELLS, argname="cell")
@variants(*REGULARIZERS, argname="regularizer")
@dtypes
def test_training_with_recurrent_dropout_and_zoneout_matches_reference_fed_the_tapes_masks(cell, regularizer, dtype):
    shape = (5, 3, 4, 11, 2, True, True)
    layer = make_layer(shape, {**CELLS[cell], **REGULARIZERS[regularizer]}, dtype, seed=4)
    x, state, dy, dstate = random_inputs(layer, 5, 3, np.random.default_rng(31))
    got, expected, expected_in_dtype = run_both(layer, x, state, dy, dstate, training=True)
    assert_matches_reference(layer, got, expected, expected_in_dtype)


@variants(*CELLS, argname="cell")
@dtypes
def test_zoneout_at_inference_matches_reference_with_the_keep_rate(cell, dtype):
    shape = (5, 2, 3, 11, 2, True, False)
    layer = make_layer(shape, {**CELLS[cell], "zoneout": 0.35}, dtype, seed=5)
    x, state, dy, dstate = random_inputs(layer, 5, 2, np.random.default_rng(32))
    got, expected, expected_in_dtype = run_both(layer, x, state, dy, dstate, training=False, zoneout_rate=0.35)
    assert_matches_reference(layer, got, expected, expected_in_dtype)
    y, final = layer(x, state)  # __call__ is inference too
    np.testing.assert_array_equal(y, got["y"])
    np.testing.assert_array_equal(final[1], got["c_n"])


@variants(*CELLS, argname="cell")
def test_zoneout_at_inference_is_the_expectation_of_keeping_the_previous_state(cell):
    # One step: h_1 = p * h_0 + (1 - p) * h~ and c_1 = p * c_0 + (1 - p) * c~, where h~, c~
    # are the step of the same layer without zoneout. Independent of the reference.
    p = 0.3
    shape = (1, 3, 4, 9, 1, True, True)
    with_zoneout = make_layer(shape, {**CELLS[cell], "zoneout": p}, seed=6)
    without = make_layer(shape, CELLS[cell], seed=6)
    x, state, _, _ = random_inputs(with_zoneout, 1, 3, np.random.default_rng(33))
    y, (h_n, c_n) = with_zoneout(x, state)
    y_new, (h_new, c_new) = without(x, state)
    h0 = np.concatenate([state[0][0], state[0][1]], axis=1)[:, None, :]  # (B, 1, 2H): both directions
    assert_close("y", y, p * h0 + (1 - p) * y_new, 1e-14, 1e-14)
    assert_close("h_n", h_n, p * state[0] + (1 - p) * h_new, 1e-14, 1e-14)
    assert_close("c_n", c_n, p * state[1] + (1 - p) * c_new, 1e-14, 1e-14)


@variants(*CELLS, argname="cell")
def test_a_zoned_out_unit_keeps_its_previous_h_and_c_in_training(cell):
    # Where the tape's zoneout_h (zoneout_c) is 1 at time t, h_t (c_t) is the state the
    # direction carried into t: its value at t-1 (t+1 for the reverse direction).
    steps, batch, hidden = 6, 3, 9
    layer = make_layer((steps, batch, 4, hidden, 1, True, False), {**CELLS[cell], "zoneout": 0.5}, seed=7)
    x, (h0, c0), _, _ = random_inputs(layer, steps, batch, np.random.default_rng(34))
    y, _, tape = layer.forward(x, (h0, c0))
    checked = 0
    for direction, run in enumerate(tape.runs):
        h = y[:, :, direction * hidden : (direction + 1) * hidden]  # (T, B, H), time-major
        c = run.tape.cells
        masks = run.tape.options
        order = range(steps) if direction == 0 else range(steps - 1, -1, -1)
        previous_h, previous_c = h0[direction], c0[direction]
        for t in order:
            for name, value, previous, mask in (("h", h[t], previous_h, masks.zoneout_h[t]),
                                                ("c", c[t], previous_c, masks.zoneout_c[t])):  # fmt: skip
                kept = mask == 1
                assert_close(f"{name}[t={t}] direction {direction} where kept", value[kept], previous[kept], 1e-15, 1e-15)
                assert not np.allclose(value[~kept], previous[~kept]), f"{name} unchanged where not kept"
                checked += int(kept.sum())
            previous_h, previous_c = h[t], c[t]
    assert checked > 0.3 * 2 * 2 * steps * batch * hidden, "too few kept units to test the rule"


def test_recurrent_dropout_mask_is_one_per_sequence_scaled_and_off_at_inference():
    p = 0.25
    layer = make_layer((4, 5, 3, 12, 2, True, True), {"recurrent_dropout": p}, seed=8)
    x, state, _, _ = random_inputs(layer, 4, 5, np.random.default_rng(35))
    _, _, tape = layer.forward(x, state)
    masks = [run.tape.options.recurrent_mask for run in tape.runs]
    for mask in masks:
        assert mask.shape == (5, 12)
        assert set(np.unique(mask)) <= {0.0, 1 / (1 - p)}
    assert len({m.tobytes() for m in masks}) == len(masks), "each layer-direction draws its own mask"
    # At inference there is no mask, and the layer is the one without recurrent dropout.
    _, _, tape = layer.forward(x, state, training=False)
    assert all(run.tape.options.recurrent_mask is None for run in tape.runs)
    plain = make_layer((4, 5, 3, 12, 2, True, True), {}, seed=8)
    np.testing.assert_array_equal(layer(x, state)[0], plain(x, state)[0])


def test_dropout_between_layers_masks_repeat_from_the_seed():
    shape = (4, 3, 5, 6, 3, True, True)
    x, state, _, _ = random_inputs(make_layer(shape, {}), 4, 3, np.random.default_rng(36))

    def first_masks(seed):
        layer = make_layer(shape, {"dropout": 0.5, "zoneout": 0.2}, seed=seed)
        y, _, tape = layer.forward(x, state)
        return y, tape.masks, tape.runs[0].tape.options.zoneout_h

    y_a, masks_a, zoneout_a = first_masks(10)
    y_b, masks_b, zoneout_b = first_masks(10)
    _, masks_c, _ = first_masks(11)
    np.testing.assert_array_equal(y_a, y_b)
    np.testing.assert_array_equal(zoneout_a, zoneout_b)
    assert masks_a[0] is None, "no dropout on the first layer's input"
    for layer_index in (1, 2):
        np.testing.assert_array_equal(masks_a[layer_index], masks_b[layer_index])
        assert masks_a[layer_index].shape == (4, 3, 2 * 6)  # time-major, the previous layer's output
        assert set(np.unique(masks_a[layer_index])) <= {0.0, 2.0}
        assert not np.array_equal(masks_a[layer_index], masks_c[layer_index]), "another seed, other masks"
    # The same layer draws new masks on its next forward; resetting its generator repeats them.
    layer = make_layer(shape, {"dropout": 0.5}, seed=10)
    saved = copy.deepcopy(layer._dropout_rng)
    _, _, first = layer.forward(x, state)
    _, _, second = layer.forward(x, state)
    assert not np.array_equal(first.masks[1], second.masks[1])
    layer._dropout_rng = saved
    _, _, again = layer.forward(x, state)
    np.testing.assert_array_equal(again.masks[1], first.masks[1])


@variant_options(
    "peephole",
    "coupled",
    "peephole_coupled",
    "layer_norm",
    "projected",
    "peephole_projected",
    "zoneout_recurrent_dropout",
    proj_size=35,
)
@pytest.mark.parametrize("batch", [12, 40], ids=["B12", "B40"])
def test_variant_matches_reference_on_two_threads(options, batch, two_threads):
    # H=70 on two threads: at B=12 each thread gets a slice of the units (and, for layer
    # norm, of the batch rows; for proj_size, of the P features), at B=40 a slice of the
    # batch rows (tests/test_core_matches_reference.py checks the plan).
    layer = make_layer((3, batch, 9, 70, 1, True, True), options, seed=9)
    x, state, dy, dstate = random_inputs(layer, 3, batch, np.random.default_rng(37))
    got, expected, expected_in_dtype = run_both(layer, x, state, dy, dstate)
    assert_matches_reference(layer, got, expected, expected_in_dtype)


@variant_options("peephole", "layer_norm", "projected", "zoneout_recurrent_dropout", proj_size=16)
@dtypes
def test_variant_matches_reference_when_dx_is_one_product_after_the_loop(options, dtype, two_threads):
    # Each thread's packed half of W_ih just over the core's per_step_input_gradient_bytes:
    # the backward computes dx after its time loop (tests/test_core_matches_reference.py
    # has the plain cells in both splits and layouts). Time-major here. x is scaled by
    # 1/sqrt(I): the partial sums of a pre-activation's I+H terms, and so float32's
    # rounding of them, stay of order one, within the tolerance above.
    itemsize = np.dtype(dtype).itemsize
    input_size = input_size_past_dx_threshold(4, 64, dtype)
    assert lstmcore._core.diagnostics.dx_after_the_loop(9, input_size, 64, 4, itemsize) == (True, True)
    layer = make_layer((3, 9, input_size, 64, 1, True, False), options, dtype=dtype, seed=11)
    x, state, dy, dstate = random_inputs(layer, 3, 9, np.random.default_rng(39))
    x = (x * input_size**-0.5).astype(dtype)
    got, expected, expected_in_dtype = run_both(layer, x, state, dy, dstate)
    assert_matches_reference(layer, got, expected, expected_in_dtype)


@variant_options("peephole", "coupled", "peephole_coupled", "zoneout_recurrent_dropout")
@pytest.mark.parametrize("steps, batch", [(1, 1), (1, 2), (2, 1)], ids=["T1-B1", "T1-B2", "T2-B1"])
def test_variant_matches_reference_in_a_pass_of_one_or_two_rows(options, steps, batch, two_threads):
    # The weights read in place (a streaming step), on two threads of 96 and 104 units.
    layer = make_layer((steps, batch, 9, 200, 1, True, True), options, seed=10)
    x, state, dy, dstate = random_inputs(layer, steps, batch, np.random.default_rng(38))
    got, expected, expected_in_dtype = run_both(layer, x, state, dy, dstate)
    assert_matches_reference(layer, got, expected, expected_in_dtype)


# ----------------------------------------------------------------- finite differences

FD_VARIANTS = checked_table({
    "peephole": {"peephole": True},
    "coupled": {"coupled": True},
    "layer_norm": {"layer_norm": True},
    "projected": {"proj_size": 2},
    "peephole_projected": {"peephole": True, "proj_size": 3},
    "peephole_coupled": {"peephole": True, "coupled": True},
    "peephole_coupled_projected": {"peephole": True, "coupled": True, "proj_size": 3},
    "peephole_coupled_zoneout_recurrent_dropout": {
        "peephole": True, "coupled": True, "zoneout": 0.3, "recurrent_dropout": 0.3,
    },
    "recurrent_dropout": {"recurrent_dropout": 0.3},
    "zoneout": {"zoneout": 0.4},
    "peephole_zoneout_recurrent_dropout": {"peephole": True, "zoneout": 0.3, "recurrent_dropout": 0.3},
    "coupled_zoneout_recurrent_dropout_dropout": {"coupled": True, "zoneout": 0.3, "recurrent_dropout": 0.3, "dropout": 0.3},
    "layer_norm_dropout": {"layer_norm": True, "dropout": 0.4},
})  # fmt: skip


@variants(*FD_VARIANTS)
def test_variant_backward_matches_finite_differences(variant):
    """loss = sum(y * dy) + sum(h_n * dh_n) + sum(c_n * dc_n) in float64 through the public API.

    Training mode, so the dropout and zoneout masks are in the loss (the same every forward).
    """
    rng = np.random.default_rng(40)
    layer = make_layer((4, 2, 3, 5, 2, True, True), FD_VARIANTS[variant], seed=2)
    for value in layer.params.values():  # larger than the default so no gate is near-linear
        value[...] = rng.uniform(-0.8, 0.8, value.shape)
    x, state, dy, dstate = random_inputs(layer, 4, 2, rng)

    assert_gradients_match_finite_differences(layer, x, state, dy, dstate, rng, FD_RTOL, FD_ATOL)


# ----------------------------------------------------------------- proj_size against PyTorch


@dtypes
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_projected_lstm_matches_torch(dtype, with_state):
    torch = pytest.importorskip("torch")
    steps, batch, input_size, hidden, proj, num_layers = 5, 3, 4, 7, 3, 2
    torch.manual_seed(0)
    net = torch.nn.LSTM(input_size, hidden, num_layers, bidirectional=True, batch_first=True, proj_size=proj).double()
    layer = lstmcore.LSTM(input_size, hidden, num_layers, bidirectional=True, dtype=dtype, proj_size=proj, seed=0)
    state_dict = {k: v.numpy() for k, v in net.state_dict().items()}
    assert set(state_dict) == set(layer.params), "parameter names differ from PyTorch's"
    for name, value in state_dict.items():
        layer.params[name][...] = value  # casts to the layer's dtype
        with torch.no_grad():  # torch gets exactly the layer's (possibly float32-rounded) weights
            net.state_dict()[name].copy_(torch.from_numpy(layer.params[name].astype(np.float64)))

    x, state, dy, dstate = random_inputs(layer, steps, batch, np.random.default_rng(41), with_state, with_state)
    layer.zero_grad()
    y, final, tape = layer.forward(x, state)
    dx, dstate0 = layer.backward(tape, dy, dstate)

    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    state_t = None if state is None else tuple(torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in state)
    y_t, final_t = net(x_t, state_t)
    loss = (y_t * torch.tensor(dy, dtype=torch.float64)).sum()
    if dstate is not None:
        loss = loss + sum((f * torch.tensor(d, dtype=torch.float64)).sum() for f, d in zip(final_t, dstate))
    loss.backward()

    tol = FLOAT64_TOLERANCE if dtype == np.float64 else FLOAT32_TOLERANCE

    def check(name, got, expected):
        expected = expected.detach().numpy()
        assert got.dtype == dtype, f"{name} is {got.dtype}"
        assert_close(name, got, expected, tol, scaled_atol(tol, expected))

    check("y", y, y_t)
    check("h_n", final[0], final_t[0])
    check("c_n", final[1], final_t[1])
    check("dx", dx, x_t.grad)
    if state is not None:
        check("dh0", dstate0[0], state_t[0].grad)
        check("dc0", dstate0[1], state_t[1].grad)
    for name, parameter in net.named_parameters():
        check(name, layer.grads[name], parameter.grad)


# ----------------------------------------------------------------- forget_bias and the checks


def test_forget_bias_sets_the_forget_rows_and_leaves_the_rest_as_pytorch_initialises():
    hidden, b = 6, 1.5
    with_bias = lstmcore.LSTM(4, hidden, 2, bidirectional=True, seed=12, forget_bias=b)
    default = lstmcore.LSTM(4, hidden, 2, bidirectional=True, seed=12)
    assert sorted(with_bias.params) == sorted(default.params)
    forget = slice(hidden, 2 * hidden)
    for name, value in with_bias.params.items():
        expected = default.params[name].copy()
        if name.startswith("bias_ih"):
            expected[forget] = b
        elif name.startswith("bias_hh"):
            expected[forget] = 0
        np.testing.assert_array_equal(value, expected, err_msg=name)


def test_forget_bias_none_keeps_pytorch_initialisation():
    default = lstmcore.LSTM(3, 5, seed=2)
    explicit = lstmcore.LSTM(3, 5, seed=2, forget_bias=None)
    for name, value in default.params.items():
        np.testing.assert_array_equal(explicit.params[name], value, err_msg=name)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"coupled": True, "forget_bias": 1.0}, ValueError, "forget_bias.*coupled"),
        ({"layer_norm": True, "peephole": True}, ValueError, "layer_norm.*peephole"),
        ({"layer_norm": True, "coupled": True}, ValueError, "layer_norm.*coupled"),
        ({"layer_norm": True, "proj_size": 2}, ValueError, "layer_norm.*proj_size"),
        ({"layer_norm": True, "zoneout": 0.1}, ValueError, "layer_norm.*zoneout"),
        ({"layer_norm": True, "recurrent_dropout": 0.1}, ValueError, "layer_norm.*recurrent_dropout"),
        ({"proj_size": 2, "zoneout": 0.1}, ValueError, "zoneout.*proj_size"),
        ({"proj_size": 2, "recurrent_dropout": 0.1}, ValueError, "recurrent_dropout.*proj_size"),
        ({"proj_size": 5}, ValueError, r"proj_size in \[0, hidden_size\) = \[0, 5\), got 5"),
        ({"proj_size": 9}, ValueError, r"proj_size in \[0, hidden_size\) = \[0, 5\), got 9"),
        ({"proj_size": -1}, ValueError, "proj_size in"),
        ({"dropout": 1.0}, ValueError, r"dropout in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, ValueError, r"dropout in \[0, 1\), got -0.1"),
        ({"recurrent_dropout": 1.0}, ValueError, r"recurrent_dropout in \[0, 1\), got 1.0"),
        ({"zoneout": 1.5}, ValueError, r"zoneout in \[0, 1\), got 1.5"),
        ({"zoneout": -0.5}, ValueError, r"zoneout in \[0, 1\), got -0.5"),
        ({"zoneout": float("nan")}, ValueError, r"zoneout in \[0, 1\), got nan"),
        ({"proj_size": True}, TypeError, "proj_size as an int, got bool"),
        ({"proj_size": 2.0}, TypeError, "proj_size as an int, got float"),
        ({"forget_bias": True}, TypeError, "forget_bias as a number or None, got bool"),
        ({"forget_bias": "1"}, TypeError, "forget_bias as a number or None, got str"),
        ({"zoneout": True}, TypeError, "zoneout as a float in"),
        ({"recurrent_dropout": False}, TypeError, "recurrent_dropout as a float in"),
        ({"dropout": True}, TypeError, "dropout as a float in"),
        ({"num_layers": True}, TypeError, "num_layers as a positive int, got bool"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_unsupported_or_invalid_options_are_refused_with_a_clear_message(options, error, message):
    with pytest.raises(error, match=message):
        lstmcore.LSTM(3, 5, **options)
