"""The reverse direction of a bidirectional LSTM with ``lengths`` while training, where
the core's regularizer masks apply: recurrent dropout (a (B, H) mask per run) and zoneout
((T, B, H) keep masks, indexed by the layer's own time in both directions, as without
lengths). The core runs the reverse direction from each sequence's own last step; here
every sequence is checked against the NumPy reference run on that sequence alone: the
forward direction on its steps, the reverse direction on its steps reversed in time,
each from the sequence's own initial state and with its rows of the masks. Checked: y on
the valid steps (zero past them), the final state, dx, the initial-state gradient and
every parameter gradient (summed over the sequences), in float32 and float64, on one
thread and on two threads split over the units and over the batch.

The batch is sorted longest first, so the layer's own sorting keeps its order and the
masks the tape holds are in the caller's batch order.

Tolerances as tests/test_core_matches_reference.py (core against reference, with its
reasons): float64 1e-12, float32 1e-5.
"""

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, scaled_atol
from _variants import dtypes
from lstmcore import reference

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}
STEPS, INPUT = 7, 3
REGULARIZERS = {
    "recurrent-dropout": {"recurrent_dropout": 0.3},
    "zoneout": {"zoneout": 0.3},
    "both": {"recurrent_dropout": 0.3, "zoneout": 0.3},
}


def reference_sequence(layer, x, h0, c0, dy, dh_n, dc_n, masks, direction, length, b):
    """The reference's y (T_b, H), final h and c, and backward dict for sequence b alone in
    one direction, in the layer's time order (reversed back for direction 1)."""
    suffix = "_l0" + ("_reverse" if direction == 1 else "")
    weights = [layer.params[name + suffix].astype(np.float64) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    steps = slice(length - 1, None, -1) if direction == 1 else slice(0, length)
    options = {}
    if masks["recurrent_mask"] is not None:
        options["recurrent_mask"] = masks["recurrent_mask"][b : b + 1].astype(np.float64)
    if masks["zoneout_h"] is not None:
        for kind in ("zoneout_h", "zoneout_c"):
            options[kind] = masks[kind][steps, b : b + 1].astype(np.float64)
    y, h_n, c_n, cache = reference.lstm_forward(
        x[steps, b : b + 1].astype(np.float64), *weights, h0.astype(np.float64), c0.astype(np.float64), **options
    )
    grads = reference.lstm_backward(cache, dy[steps, b : b + 1].astype(np.float64), dh_n, dc_n)
    grads["dx"] = grads["dx"][::-1] if direction == 1 else grads["dx"]
    return (y[::-1] if direction == 1 else y), h_n, c_n, grads


def check_reverse_with_lengths_in_training(dtype, regularizers, lengths, hidden):
    batch = len(lengths)
    layer = lstmcore.LSTM(INPUT, hidden, 1, bidirectional=True, batch_first=False, dtype=dtype, seed=5, **regularizers)
    rng = np.random.default_rng(11)
    for value in layer.params.values():
        value += rng.normal(scale=0.1, size=value.shape).astype(dtype)
    x = rng.normal(size=(STEPS, batch, INPUT)).astype(dtype)
    h0, c0, dh_n, dc_n = (rng.normal(size=(2, batch, hidden)).astype(dtype) for _ in range(4))
    dy = rng.normal(size=(STEPS, batch, 2 * hidden)).astype(dtype)
    y, (h_n, c_n), tape = layer.forward(x, (h0, c0), lengths=np.array(lengths), training=True)
    dx, (dh0, dc0) = layer.backward(tape, dy, (dh_n, dc_n))
    tol = TOLERANCE[dtype]

    def check(name, got, expected):
        assert got.dtype == dtype, f"{name} is {got.dtype}, the layer is {dtype}"
        assert_close(name, got, expected, tol, scaled_atol(tol, expected))

    summed = {name: np.zeros(grad.shape) for name, grad in layer.grads.items()}
    for b, length in enumerate(lengths):
        dx_b = np.zeros((length, 1, INPUT))
        for direction in (0, 1):
            recorded = tape.runs[direction].tape.options  # the masks this direction ran with
            masks = {kind: getattr(recorded, kind) for kind in ("recurrent_mask", "zoneout_h", "zoneout_c")}
            columns = slice(direction * hidden, (direction + 1) * hidden)
            y_b, h_b, c_b, grads = reference_sequence(
                layer, x, h0[direction, b : b + 1], c0[direction, b : b + 1], dy[..., columns],
                dh_n[direction, b : b + 1].astype(np.float64), dc_n[direction, b : b + 1].astype(np.float64),
                masks, direction, length, b,
            )  # fmt: skip
            where = f"seq {b} (length {length}), direction {direction}"
            check(f"y [{where}]", y[:length, b : b + 1, columns], y_b)
            check(f"h_n [{where}]", h_n[direction, b : b + 1], h_b)
            check(f"c_n [{where}]", c_n[direction, b : b + 1], c_b)
            check(f"dh0 [{where}]", dh0[direction, b : b + 1], grads["dh0"])
            check(f"dc0 [{where}]", dc0[direction, b : b + 1], grads["dc0"])
            dx_b += grads["dx"]
            suffix = "_l0" + ("_reverse" if direction == 1 else "")
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                summed[kind + suffix] += grads[kind]
        check(f"dx [seq {b}]", dx[:length, b : b + 1], dx_b)
        np.testing.assert_array_equal(y[length:, b], 0, err_msg=f"y past the length of seq {b}")
        np.testing.assert_array_equal(dx[length:, b], 0, err_msg=f"dx past the length of seq {b}")
    for name, grad in layer.grads.items():
        check(f"grads[{name!r}]", grad, summed[name])


@dtypes
@pytest.mark.parametrize("regularizers", list(REGULARIZERS.values()), ids=list(REGULARIZERS))
def test_reverse_with_lengths_in_training_matches_the_reference_per_sequence(dtype, regularizers):
    check_reverse_with_lengths_in_training(dtype, regularizers, [7, 7, 5, 4, 4, 2, 1], hidden=5)


@pytest.mark.parametrize("batch, split", [(12, "units"), (40, "batch")], ids=["units-split", "batch-split"])
def test_reverse_with_lengths_in_training_matches_the_reference_on_two_threads(batch, split, two_threads):
    for backward in (False, True):
        assert lstmcore._core.diagnostics.pass_plan(batch, INPUT, 64, 4, 8, backward) == (2, split)
    lengths = sorted((1 + (b * 3) % STEPS for b in range(batch)), reverse=True)
    check_reverse_with_lengths_in_training(np.float64, REGULARIZERS["both"], lengths, hidden=64)
