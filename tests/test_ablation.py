"""Ablation (``ablate={"forget": 1.0, ...}``): gates held at given values, against
lstmcore.reference's clamps, finite differences and identities of its own; and its checks.

A clamp replaces the gate's activation where it is not NaN, per unit, and the clamped
gate is a constant (no gradient to its pre-activation).

Tolerances: those of tests/test_variants.py, which explains them (float64 1e-12 and float32
1e-5 of the tensor's scale, layer norm in float32 relative to the float32 reference's own
error; finite differences rtol 1e-6, atol 1e-7). The reference gets the clamps rounded to
the layer's dtype, as the layer holds them, so a clamp adds no difference of its own.
"""

import numpy as np
import pytest

import lstmcore
from _compare import FD_ATOL, FD_RTOL
from _layer_vs_reference import (
    assert_gradients_match_finite_differences,
    assert_matches_reference,
    make_layer,
    random_inputs,
    run_both,
)
from _variants import dtypes, option_table, variants

# proj_size 4: below SHAPE's H = 9.
VARIANTS = option_table(
    "lstm", "peephole", "coupled", "layer_norm", "peephole_projected", "zoneout_recurrent_dropout", proj_size=4
)
# (steps, batch, input_size, hidden, num_layers, bidirectional, batch_first)
SHAPE = (5, 3, 4, 9, 2, True, True)
COUNT = SHAPE[4] * 2  # layer-directions


def per_unit(hidden, value, rng, fraction=0.5):
    """An (H,) clamp holding ``value`` on a random ``fraction`` of the units and NaN elsewhere."""
    clamp = np.full(hidden, np.nan)
    clamp[rng.permutation(hidden)[: max(1, int(fraction * hidden))]] = value
    return clamp


def ablations(variant, hidden, rng):
    """Named ablate arguments of every form: numbers, (H,) arrays with NaN, (L*D, H) arrays."""
    forget = "input" if variant == "coupled" else "forget"  # a coupled cell clamps f through i
    per_direction = np.where(rng.random((COUNT, hidden)) < 0.5, np.nan, rng.uniform(0, 1, (COUNT, hidden)))
    return {
        "numbers": {forget: 1.0, "output": 0.5},
        "per-unit-with-nan": {"input": per_unit(hidden, 0.0, rng), "candidate": per_unit(hidden, -0.75, rng)},
        "per-layer-direction": {forget: per_direction, "output": per_unit(hidden, 1.0, rng), "candidate": 0.25},
    }


@variants(*VARIANTS)
@pytest.mark.parametrize("form", ["numbers", "per-unit-with-nan", "per-layer-direction"])
@dtypes
def test_ablated_forward_and_backward_match_reference_with_the_same_clamps(variant, form, dtype):
    layer = make_layer(SHAPE, VARIANTS[variant], dtype, seed=1)
    rng = np.random.default_rng(50)
    ablate = ablations(variant, layer.hidden_size, rng)[form]
    x, state, dy, dstate = random_inputs(layer, SHAPE[0], SHAPE[1], rng)
    got, expected, expected_in_dtype = run_both(layer, x, state, dy, dstate, ablate=ablate)
    assert_matches_reference(layer, got, expected, expected_in_dtype)
    # Inference through __call__: forward(training=False), which the reference matches
    # without dropout masks (and with zoneout at its rate).
    y, final = layer(x, state, ablate=ablate)
    got, expected, expected_in_dtype = run_both(layer, x, state, ablate=ablate, training=False)
    np.testing.assert_array_equal(y, got["y"])
    np.testing.assert_array_equal(final[1], got["c_n"])
    assert_matches_reference(layer, got, expected, expected_in_dtype)


@variants(*VARIANTS)
def test_ablated_backward_matches_finite_differences(variant):
    rng = np.random.default_rng(51)
    shape = (4, 2, 3, 5, 2, True, True)
    options = dict(VARIANTS[variant])
    if "proj_size" in options:
        options["proj_size"] = 2  # below H = 5
    layer = make_layer(shape, options, seed=2)
    for value in layer.params.values():
        value[...] = rng.uniform(-0.8, 0.8, value.shape)
    forget = "input" if variant == "coupled" else "forget"
    ablate = {forget: per_unit(5, 0.9, rng), "output": per_unit(5, 0.3, rng), "candidate": 0.5}
    x, state, dy, dstate = random_inputs(layer, 4, 2, rng)

    assert_gradients_match_finite_differences(layer, x, state, dy, dstate, rng, FD_RTOL, FD_ATOL, ablate=ablate)


@variants("lstm", "peephole", "coupled", "layer_norm", "peephole_projected")
def test_forget_one_and_input_zero_keep_the_cell_at_its_initial_value(variant):
    # c_t = f * c_{t-1} + i * g = c_{t-1} where f = 1, i = 0 (a coupled cell: i = 0 makes
    # f = 1 - i = 1): those units' cells never move, whatever the input. The other units
    # (NaN in the clamp) do move.
    layer = make_layer(SHAPE, VARIANTS[variant], seed=3)
    rng = np.random.default_rng(52)
    hidden = layer.hidden_size
    held = np.full(hidden, np.nan)
    held[[0, 3, 4, hidden - 1]] = 1.0
    ablate = {"input": held * 0} if variant == "coupled" else {"forget": held, "input": held * 0}
    x, state, _, _ = random_inputs(layer, SHAPE[0], SHAPE[1], rng)
    _, (_, c_n), traces = layer(x, state, ablate=ablate, return_gates=True)
    kept = ~np.isnan(held)
    for index, trace in enumerate(traces):
        c0 = state[1][index]  # (B, H)
        cells = trace["cell"]  # (T, B, H)
        np.testing.assert_array_equal(cells[:, :, kept], np.broadcast_to(c0[:, kept], cells[:, :, kept].shape))
        assert not np.any(np.isclose(cells[:, :, ~kept], c0[:, ~kept])), "units without a clamp kept their cell"
        np.testing.assert_array_equal(trace["forget"][:, :, kept], 1.0)
        np.testing.assert_array_equal(trace["input"][:, :, kept], 0.0)
    np.testing.assert_array_equal(c_n[:, :, kept], state[1][:, :, kept])


def test_a_row_of_an_l_by_d_clamp_ablates_only_its_own_layer_direction():
    # One bidirectional layer: clamp the forward direction's forget gate (row 0) and leave
    # the reverse direction (row 1, all NaN) alone. The directions do not see each other.
    layer = make_layer((5, 3, 4, 9, 1, True, True), {}, seed=4)
    x, state, _, _ = random_inputs(layer, 5, 3, np.random.default_rng(53))
    forget = np.full((2, 9), np.nan)
    forget[0] = 0.0
    y_ablated, _ = layer(x, state, ablate={"forget": forget})
    y, _ = layer(x, state)
    np.testing.assert_array_equal(y_ablated[:, :, 9:], y[:, :, 9:])
    assert not np.allclose(y_ablated[:, 1:, :9], y[:, 1:, :9])


def test_clamping_forget_on_a_coupled_lstm_is_refused():
    layer = make_layer(SHAPE, {"coupled": True})
    x = np.zeros((3, 5, 4))
    with pytest.raises(ValueError, match=r"coupled LSTM has no forget gate.*clamp 'input'"):
        layer(x, ablate={"forget": 1.0})


@pytest.mark.parametrize(
    "ablate, error, message",
    [
        (
            {"forgett": 1.0},
            ValueError,
            r"expected ablate keys among \['input', 'forget', 'candidate', 'output'\], got 'forgett'",
        ),
        ({"cell": 1.0}, ValueError, r"got 'cell'"),
        (
            {"input": np.zeros(10)},
            ValueError,
            r"expected ablate\['input'\] as a number or of shape \(9,\) or \(4, 9\), got \(10,\)",
        ),
        ({"output": np.zeros((3, 9))}, ValueError, r"expected ablate\['output'\] .* \(9,\) or \(4, 9\), got \(3, 9\)"),
        ({"forget": np.zeros((4, 9, 1))}, ValueError, r"\(9,\) or \(4, 9\), got \(4, 9, 1\)"),
        ({"input": "closed"}, TypeError, r"ablate\['input'\] as a numeric array"),
        ([("input", 1.0)], TypeError, "expected ablate as a dict gate -> value, got list"),
    ],
    ids=["misspelt-key", "cell-key", "H+1", "wrong-rows", "3-dims", "string-value", "not-a-dict"],
)
def test_bad_ablate_is_refused_naming_expected_and_given(ablate, error, message):
    layer = make_layer(SHAPE, {})
    with pytest.raises(error, match=message):
        layer(np.zeros((3, 5, 4)), ablate=ablate)


def test_ablation_on_a_gru_is_refused():
    layer = lstmcore.GRU(4, 6, seed=0)
    with pytest.raises(ValueError, match="GRU does not support ablate"):
        layer(np.zeros((2, 3, 4)), ablate={"input": 1.0})
