"""The layers (lstmcore.LSTM / GRU, through their public contract) against lstmcore.reference.

Forward (y and every final state) and backward (dx, every initial-state gradient and every
parameter gradient) over float32 and float64, odd sizes, stacking, both directions, both
layouts, with and without an initial state and a final-state gradient.

Tolerances, as |got - expected| <= tol * scale + tol * |expected|, scale = max(1, max|expected|)
of that tensor (rounding errors of a sum scale with its terms, so a near-zero result of
cancellation keeps an error of the tensor's scale):
- float64, 1e-12: the core and the reference evaluate the same expressions in a different
  order (blocked GEMMs, fused gates), so only rounding differs: a few units of 1.1e-16
  per operation over at most T=10 steps and 3 layers; observed <= 1.0e-15.
- float32: the layer in float32 against the reference in float64 on the same float32
  inputs, so the whole difference is the layer's own float32 error. Per step each
  pre-activation is a dot product of I+H <= 46 terms (the test of dx after the loop has
  thousands, with x scaled so that their sums stay of order one; it says why) (error ~ sqrt(46) * 6e-8 typical,
  ~5e-7) and each gate adds the activations' 4e-7 bound (tests/test_activations.py);
  weights are +-1/sqrt(H), so the recurrence does not amplify errors and over T <= 10
  steps and 3 layers (plus the T*B-term sums of the weight gradients) they add up to
  ~1e-5 in the worst case. tol = 1e-5 (about 80 eps32); observed <= 2.3e-7 (2 eps32)
  over every case here and three seeds.
"""

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, scaled_atol
from _layers import input_size_past_dx_threshold
from _variants import dtypes, kinds
from lstmcore import reference

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}
LAYERS = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU}
STATES = {"lstm": ("h", "c"), "gru": ("h",)}

# (steps, batch, input_size, hidden, num_layers, bidirectional, batch_first)
SHAPES = {
    "T1-B1-H5": (1, 1, 3, 5, 1, False, True),
    "H13-L2-bidir-time-major": (4, 3, 7, 13, 2, True, False),
    "H33-L3-bidir": (5, 2, 4, 33, 3, True, True),
    "T10-H5-L3-time-major": (10, 2, 6, 5, 3, False, False),
    "T7-B1-H13-bidir": (7, 1, 13, 13, 1, True, True),
}


def pack(kind, parts):
    return tuple(parts) if kind == "lstm" else parts[0]


def unpack(kind, state):
    return tuple(state) if kind == "lstm" else (state,)


def run_both(kind, dtype, shape, with_state, with_dstate, seed=0, x_scale=1.0):
    """Forward and backward through the layer and through the reference (float64).

    Returns two dicts of named tensors (layer, reference) over the same float32/64 inputs,
    x drawn with standard deviation ``x_scale``.
    """
    steps, batch, input_size, hidden, num_layers, bidirectional, batch_first = shape
    rng = np.random.default_rng(seed)
    layer = LAYERS[kind](
        input_size, hidden, num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, seed=seed
    )
    directions = 2 if bidirectional else 1
    x_shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
    x = (x_scale * rng.normal(size=x_shape)).astype(dtype)
    state_shape = (num_layers * directions, batch, hidden)
    state = [rng.normal(size=state_shape).astype(dtype) for _ in STATES[kind]] if with_state else None
    y_shape = x.shape[:2] + (directions * hidden,)
    dy = rng.normal(size=y_shape).astype(dtype)
    dstate = [rng.normal(size=state_shape).astype(dtype) for _ in STATES[kind]] if with_dstate else None

    y, final, tape = layer.forward(x, None if state is None else pack(kind, state))
    dx, dstate0, hidden = layer.backward(
        tape, dy, None if dstate is None else pack(kind, dstate), return_hidden_gradients=True
    )
    got = {"y": y, "dx": dx, "hidden_gradients": hidden}
    got.update({f"{s}_n": v for s, v in zip(STATES[kind], unpack(kind, final))})
    got.update({f"d{s}0": v for s, v in zip(STATES[kind], unpack(kind, dstate0))})
    got.update(layer.grads)

    def f64(a):
        return None if a is None else np.asarray(a, np.float64)

    params = {k: f64(v) for k, v in layer.params.items()}
    options = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    r_state = None if state is None else pack(kind, [f64(s) for s in state])
    r_y, r_final, cache = reference.rnn_forward(kind, params, f64(x), r_state, **options)
    r_dstate = None if dstate is None else pack(kind, [f64(s) for s in dstate])
    r_dx, r_dstate0, r_grads, r_hidden = reference.rnn_backward(cache, f64(dy), r_dstate, return_hidden_gradients=True)
    expected = {"y": r_y, "dx": r_dx, "hidden_gradients": r_hidden}
    expected.update({f"{s}_n": v for s, v in zip(STATES[kind], unpack(kind, r_final))})
    expected.update({f"d{s}0": v for s, v in zip(STATES[kind], unpack(kind, r_dstate0))})
    expected.update(r_grads)
    return got, expected


def assert_all_close(names, got, expected, dtype):
    tol = TOLERANCE[dtype]
    for name in names:
        assert got[name].dtype == dtype, f"{name} is {got[name].dtype}, the layer is {np.dtype(dtype).name}"
        assert_close(name, got[name], expected[name], tol, scaled_atol(tol, expected[name]))


cases = pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))


@kinds
@dtypes
@cases
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_forward_matches_reference(kind, dtype, shape, with_state):
    got, expected = run_both(kind, dtype, shape, with_state, with_dstate=False)
    assert_all_close(["y", *(f"{s}_n" for s in STATES[kind])], got, expected, dtype)


@kinds
@dtypes
@cases
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("with_dstate", [False, True], ids=["no-dstate", "dstate"])
def test_backward_matches_reference(kind, dtype, shape, with_state, with_dstate):
    got, expected = run_both(kind, dtype, shape, with_state, with_dstate)
    names = ["dx", "hidden_gradients", *(f"d{s}0" for s in STATES[kind])]
    names += sorted(k for k in expected if k.startswith(("weight", "bias")))
    assert set(got) - set(expected) == set(), "the layer has gradients the reference does not know"
    assert_all_close(names, got, expected, dtype)


@kinds
@pytest.mark.parametrize("batch", [*range(1, 19), 20, 32, 64])
def test_every_tiling_of_the_batch_matches_reference(kind, batch):
    # The products spread a step's B rows evenly over tiles of at most 8 (6 with AVX2; 9
    # rows are 5+4, 20 are 7+7+6), and the weight gradients spread T*B rows over blocks of
    # 96: every batch size up to 18 meets each tile height in each position. T=7 makes
    # T*B cross 96 from B=14 on.
    shape = (7, batch, 5, 9, 1, True, True)
    got, expected = run_both(kind, np.float64, shape, with_state=True, with_dstate=True)
    assert_all_close(sorted(expected), got, expected, np.float64)


@kinds
@dtypes
@pytest.mark.parametrize("batch, split", [(12, "units"), (40, "batch")], ids=["units-split", "batch-split"])
def test_matches_reference_when_two_threads_split_the_pass(kind, dtype, batch, split, two_threads):
    # H=70: at B=12, 2*B*G*H^2 >= 0.47M flops a step and 70 units, so the core's planner
    # gives each of the two threads its own slice of hidden units (with a ragged end); at
    # B=40 each its own 20 batch rows. float32 within the tolerance above: a
    # pre-activation here sums I+H = 79 terms, ~7e-7 typical error, over T=3 steps.
    gates = 4 if kind == "lstm" else 3
    for backward in (False, True):
        assert lstmcore._core.diagnostics.pass_plan(batch, 9, 70, gates, np.dtype(dtype).itemsize, backward) == (2, split)
    shape = (3, batch, 9, 70, 1, True, True)
    got, expected = run_both(kind, dtype, shape, with_state=True, with_dstate=True)
    assert_all_close(sorted(expected), got, expected, dtype)


@kinds
@dtypes
@pytest.mark.parametrize("steps, batch", [(1, 1), (1, 2), (2, 1)], ids=["T1-B1", "T1-B2", "T2-B1"])
def test_matches_reference_in_a_pass_of_one_or_two_rows(kind, dtype, steps, batch, two_threads):
    # A pass of at most two rows (a streaming step) reads the weights in place instead of
    # packing them. H=200 gives two threads 96 and 104 units (a ragged last packet).
    gates = 4 if kind == "lstm" else 3
    assert lstmcore._core.diagnostics.pass_plan(batch, 9, 200, gates, np.dtype(dtype).itemsize, False) == (2, "units")
    shape = (steps, batch, 9, 200, 2, True, True)
    got, expected = run_both(kind, dtype, shape, with_state=True, with_dstate=True)
    assert_all_close(sorted(expected), got, expected, dtype)


@kinds
@dtypes
@pytest.mark.parametrize("batch", [2, 3])
@pytest.mark.parametrize("hidden", [20, 26, 28, 30, 40, 56, 264])
def test_matches_reference_for_one_or_two_rows_at_any_panel_width(kind, dtype, batch, hidden):
    # A tile of one or two rows takes the weights' panels (a gate's units, 16 columns in
    # float32 and 8 in float64 with AVX2; 32 and 16 with AVX-512) two at a time. These
    # widths give pairs of full panels, pairs whose second panel is part-filled (a whole
    # packet, less, more: in float32 H=20, 56, 28; in float64 H=28, 26, 30), and an odd
    # last panel alone. B=2 is one tile of two rows (the pairs); B=3 one tile of three,
    # which takes one panel at a time. H=264 makes W_hh's depth two blocks of the
    # kernel's, which one tile of rows (B=2 and B=3) takes panel by panel, each panel's
    # blocks in turn.
    shape = (5, batch, 7, hidden, 1, True, True)
    got, expected = run_both(kind, dtype, shape, with_state=True, with_dstate=True)
    assert_all_close(sorted(expected), got, expected, dtype)


@kinds
@dtypes
@pytest.mark.parametrize("batch, split", [(9, "units"), (16, "batch")], ids=["units-split", "batch-split"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
def test_matches_reference_when_dx_is_one_product_after_the_loop(kind, dtype, batch, split, batch_first, two_threads):
    # A thread's packed slice of W_ih over the core's per_step_input_gradient_bytes (4 MB)
    # makes the backward compute dx as one product after its time loop
    # (input_gradient.hpp), which _core.diagnostics.dx_after_the_loop confirms for both threads. H=96
    # with I just past that: each thread holds half the inputs at B=9 (units split), all
    # of them at B=16 (batch split, whose weights stay under its 5 MB); G = 288 or 384
    # (two depth blocks of 256) and T*B = 117 or 208 rows (several blocks of 96).
    # Bidirectional: the second direction adds to dx. x is scaled by 1/sqrt(I): a
    # pre-activation sums I+H terms here (not the 46 of the other cases), and the scaling
    # keeps its partial sums, and so float32's rounding of them, of order one.
    gates, itemsize, hidden = (4 if kind == "lstm" else 3), np.dtype(dtype).itemsize, 96
    input_size = input_size_past_dx_threshold(gates, hidden, dtype, threads=2 if split == "units" else 1)
    assert lstmcore._core.diagnostics.pass_plan(batch, input_size, hidden, gates, itemsize, True) == (2, split)
    assert lstmcore._core.diagnostics.dx_after_the_loop(batch, input_size, hidden, gates, itemsize) == (True, True)
    shape = (13, batch, input_size, hidden, 1, True, batch_first)
    got, expected = run_both(kind, dtype, shape, with_state=True, with_dstate=True, x_scale=input_size**-0.5)
    assert_all_close(sorted(expected), got, expected, dtype)


def test_dx_is_computed_step_by_step_below_the_threshold_with_or_without_lengths():
    # The counterpart of the test above: a small slice keeps dx in the loop; lengths do
    # not change the choice (the padding rows' gate gradients are zeros either way).
    itemsize, hidden = 4, 96
    big = input_size_past_dx_threshold(4, hidden, np.float32)
    batch_sizes = np.array([9, 9, 5], np.int64)  # as the layer passes them with lengths
    for sizes in (None, batch_sizes):
        assert lstmcore._core.diagnostics.dx_after_the_loop(9, big, hidden, 4, itemsize, sizes) == (True, True)
        assert lstmcore._core.diagnostics.dx_after_the_loop(9, 256, hidden, 4, itemsize, sizes) == (False, False)


@kinds
@pytest.mark.parametrize(
    "batch_first",
    [pytest.param(True, id="batch-first"), pytest.param(False, id="time-major")],
)
def test_changing_y_in_place_does_not_change_backward(kind, batch_first):
    rng = np.random.default_rng(60)
    layer = LAYERS[kind](3, 4, dtype=np.float64, batch_first=batch_first, seed=0)
    x = rng.normal(size=(5, 2, 3))
    y, _, tape = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx_before, _ = layer.backward(tape, dy)
    grads_before = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    y[...] = 0  # e.g. a caller reusing the output buffer, or an in-place activation
    dx_after, _ = layer.backward(tape, dy)
    np.testing.assert_array_equal(dx_after, dx_before)
    for name, grad in grads_before.items():
        np.testing.assert_array_equal(layer.grads[name], grad, err_msg=name)
