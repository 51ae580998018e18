"""``lengths=`` on LSTM (plain, peephole, coupled, layer_norm, proj_size, zoneout at
inference) and GRU: each sequence of a padded, unsorted batch behaves exactly as if it ran
alone, and bad lengths are rejected naming the expected and the given.

For every case the batch runs once with ``lengths`` (forward, then backward with random
dy, random dstate and NaN in dy's padded steps), then every sequence runs alone (B=1,
truncated to its length) and the per-sequence parameter gradients are summed. Checked:
y on the valid steps, the final state, dx, the initial-state gradient and every
parameter gradient; outputs and dx on padded steps are exactly zero. The reverse
direction of a bidirectional layer starting at each sequence's own end is part of the
"alone" comparison (a sequence run alone ends at its last valid step).

Tolerances, as |got - expected| <= tol * scale + tol * |expected|, scale = max(1, max|expected|)
of that tensor (see tests/test_core_matches_reference.py for why the scale):
- float64, 1e-12: the batched and the single-sequence runs evaluate the same expressions;
  only the summation order differs (GEMM blocking over a different number of rows, the
  weight gradients summed over the batch in one GEMM instead of per sequence then added).
  Observed <= 2.1e-14 (layer_norm), <= 7e-16 for the others.
- float32, 2e-5: both runs are float32, each within the 1e-5 bound that
  tests/test_core_matches_reference.py justifies against float64, so they differ by at
  most twice that. Observed <= 2.4e-7 (2 eps32).
- float32 with layer_norm, 1e-4: layer norm divides each row by its standard deviation,
  which for rows of H=5 cells (or 4H=20 pre-activations) can be small, and so amplifies
  the float32 rounding of the row's entries. Measured on these shapes over 30 seeds: the
  layer's own float32 error against the same layer in float64 reaches 2.5e-5, and
  batched against alone 2.1e-5 (the plain LSTM: 2.4e-7 and 2.2e-7). The core's
  normalisation is two-pass with double sums, so this is the conditioning, not the core.
"""

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, scaled_atol
from _layers import (
    gate_blocks,
    input_size_past_dx_threshold,
    layer_state,
    move_off_initialisation,
    random_state,
    state_list,
)
from _variants import LAYER_VARIANTS, dtypes, variants

# The "alone" comparisons run at
# inference (training=False): zoneout's training masks are drawn per call and shaped by
# the batch, so a sequence alone gets other masks.
VARIANTS = LAYER_VARIANTS
STEPS, INPUT, HIDDEN = 7, 3, 5
UNSORTED = [3, 7, 1, 7, 5]


def tolerance(variant, dtype):
    if dtype == np.float64:
        return 1e-12
    return 1e-4 if variant == "layer_norm" else 2e-5


def make_layer(variant, num_layers, bidirectional, batch_first, dtype, seed=0, hidden=HIDDEN, input_size=INPUT, **extra):
    """The layer, every parameter moved off its initialisation (layer-norm gains start at
    1 and biases at 0: a mix-up between two of them would not show there)."""
    cls, options = VARIANTS[variant]
    layer = cls(
        input_size, hidden, num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype,
        seed=seed, **options, **extra,
    )  # fmt: skip
    return move_off_initialisation(layer, seed)


def sequence(array, layer, b, length=None):
    """Sequence b of a (B, T, F) / (T, B, F) array, first ``length`` steps, kept 3-D (batch of 1)."""
    steps = slice(None, length)
    return array[b : b + 1, steps] if layer.batch_first else array[steps, b : b + 1]


def padding(array, layer, b, length):
    """Steps past ``length`` of sequence b, as (T - length, F)."""
    return array[b, length:] if layer.batch_first else array[length:, b]


def state_row(layer, state, b):
    """Sequence b's rows of a state (or None), in the layer's form."""
    return None if state is None else layer_state(layer, [part[:, b : b + 1] for part in state_list(state)])


def inputs(layer, lengths, with_state, with_dstate, seed=1):
    """x, the initial state (or None), dy with NaN in padded steps and dstate (or None)."""
    rng = np.random.default_rng(seed)
    batch = len(lengths)
    shape = (batch, STEPS, layer.input_size) if layer.batch_first else (STEPS, batch, layer.input_size)
    x = rng.normal(size=shape).astype(layer.dtype)
    state = random_state(layer, batch, rng) if with_state else None
    width = layer.num_directions * layer.output_size
    dy = rng.normal(size=shape[:2] + (width,)).astype(layer.dtype)
    for b, length in enumerate(lengths):
        padding(dy, layer, b, length)[...] = np.nan  # must never be read
    dstate = random_state(layer, batch, rng) if with_dstate else None
    return x, state, dy, dstate


def check_matches_alone(variant, layer, lengths, with_state, with_dstate):
    x, state, dy, dstate = inputs(layer, lengths, with_state, with_dstate)
    y, final, tape = layer.forward(x, state, lengths=np.array(lengths), training=False)
    dx, dstate0 = layer.backward(tape, dy, dstate)
    batch_grads = {name: grad.copy() for name, grad in layer.grads.items()}
    summed = {name: np.zeros_like(grad, dtype=np.float64) for name, grad in batch_grads.items()}
    tol = tolerance(variant, layer.dtype)

    def check(name, got, expected):
        assert got.dtype == layer.dtype, f"{name} is {got.dtype}, the layer is {layer.dtype}"
        assert_close(name, got, expected, tol, scaled_atol(tol, expected))

    for b, length in enumerate(lengths):
        layer.zero_grad()
        y_b, final_b, tape_b = layer.forward(sequence(x, layer, b, length), state_row(layer, state, b), training=False)
        dx_b, dstate0_b = layer.backward(tape_b, sequence(dy, layer, b, length), state_row(layer, dstate, b))
        for name, grad in layer.grads.items():
            summed[name] += grad
        check(f"y[seq {b}]", sequence(y, layer, b, length), y_b)
        check(f"dx[seq {b}]", sequence(dx, layer, b, length), dx_b)
        for k, (part, part_b) in enumerate(zip(state_list(final), state_list(final_b))):
            check(f"final state {k} [seq {b}]", part[:, b : b + 1], part_b)
        for k, (part, part_b) in enumerate(zip(state_list(dstate0), state_list(dstate0_b))):
            check(f"dstate0 {k} [seq {b}]", part[:, b : b + 1], part_b)
        np.testing.assert_array_equal(padding(y, layer, b, length), 0, err_msg=f"y past the length of seq {b}")
        np.testing.assert_array_equal(padding(dx, layer, b, length), 0, err_msg=f"dx past the length of seq {b}")
    for name, grad in batch_grads.items():
        check(f"grads[{name!r}]", grad, summed[name])


@variants()
@dtypes
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bidir"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("with_dstate", [False, True], ids=["no-dstate", "dstate"])
def test_each_sequence_matches_running_it_alone(
    variant, dtype, num_layers, bidirectional, batch_first, with_state, with_dstate
):
    layer = make_layer(variant, num_layers, bidirectional, batch_first, dtype)
    check_matches_alone(variant, layer, UNSORTED, with_state, with_dstate)


@variants()
@dtypes
@pytest.mark.parametrize(
    "lengths",
    [[STEPS] * 5, [1] * 5, [2, 4, 1, 3, 4], [STEPS]],
    ids=["all-T", "all-ones", "all-shorter-than-T", "one-sequence"],
)
def test_edge_lengths_match_running_alone(variant, dtype, lengths):
    # all-shorter-than-T: the last steps have no sequence alive at all.
    layer = make_layer(variant, 2, True, False, dtype)
    check_matches_alone(variant, layer, lengths, with_state=True, with_dstate=True)


@variants()
def test_lengths_across_projection_chunks_match_running_alone(variant):
    # The core projects the input a chunk of 256 // B steps ahead: B = 60 makes the 7 steps
    # two chunks (4 + 3), in both directions, with sequences ending inside each.
    lengths = [1 + (b * 5) % STEPS for b in range(60)]
    layer = make_layer(variant, 1, True, False, np.float64)
    check_matches_alone(variant, layer, lengths, with_state=True, with_dstate=True)


@variants()
@pytest.mark.parametrize("batch, split", [(12, "units"), (40, "batch")], ids=["units-split", "batch-split"])
def test_lengths_match_running_alone_when_two_threads_split_the_pass(variant, batch, split, two_threads):
    # H=64 on two threads: B=12 splits the hidden units, B=40 the batch rows (LSTM and GRU
    # kernels), cut where the rows before hold half of the real steps.
    for backward in (False, True):
        assert lstmcore._core.diagnostics.pass_plan(batch, INPUT, 64, 4, 8, backward) == (2, split)
    lengths = sorted((1 + (b * 3) % STEPS for b in range(batch)), reverse=True)
    layer = make_layer(variant, 1, True, False, np.float64, hidden=64)
    check_matches_alone(variant, layer, lengths, with_state=True, with_dstate=True)


@variants()
def test_lengths_match_running_alone_when_dx_is_one_product_after_the_loop(variant, two_threads):
    # Each thread's packed half of W_ih over the core's per_step_input_gradient_bytes: the
    # backward computes dx after its loop (tests/test_core_matches_reference.py), padding
    # rows included, which must come out exactly zero. B=9: split over units.
    gates = gate_blocks(variant)
    input_size = input_size_past_dx_threshold(gates, 64, np.float64)
    lengths = [3, 7, 1, 7, 5, 2, 7, 4, 6]
    batch_sizes = np.array([sum(n > t for n in lengths) for t in range(STEPS)], np.int64)
    if variant != "projected":
        assert lstmcore._core.diagnostics.dx_after_the_loop(9, input_size, 64, gates, 8, batch_sizes) == (True, True)
    layer = make_layer(variant, 1, True, False, np.float64, hidden=64, input_size=input_size)
    check_matches_alone(variant, layer, lengths, with_state=True, with_dstate=True)


@variants()
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hidden", [16, 40, 300])
def test_with_lengths_a_sequence_gets_the_same_bits_in_any_batch_of_three_or_more(variant, dtype, threads, hidden):
    # As the sequences of a batch end, its last rows run alone or in pairs; they keep the
    # order of sums they have beside the others (a tile of one row split its sums by
    # parity, as a batch-1 pass does, and differed in the last bits). Model.predict's
    # batches and distributed.predict's chunks rely on it. H=40 gives a gate several
    # panels of units, which tiles of one or two rows take two at a time; at H=300 the
    # products' depth is two blocks, which a batch of one tile takes panel by panel and
    # one of more tiles block by block.
    previous = lstmcore._core.requested_threads()
    lstmcore.set_num_threads(threads)
    try:
        layer = make_layer(variant, 2, True, False, dtype, hidden=hidden)
        lengths = np.array([7, 2, 5, 7, 1, 3, 6, 4, 2])
        x = np.random.default_rng(0).standard_normal((STEPS, len(lengths), INPUT)).astype(dtype)
        y_all, _ = layer(x, lengths=lengths)
        for part in ([0, 1, 2], [3, 4, 5, 6], [7, 8, 1], [6, 2, 4]):
            y_part, _ = layer(x[:, part], lengths=lengths[part])
            np.testing.assert_array_equal(y_part, y_all[:, part])
    finally:
        lstmcore.set_num_threads(previous)


@variants()
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
def test_lengths_all_t_equal_no_lengths(variant, batch_first):
    layer = make_layer(variant, 2, True, batch_first, np.float64)
    x, state, dy, dstate = inputs(layer, [STEPS] * 5, with_state=True, with_dstate=True)
    results = []
    for lengths in (None, [STEPS] * 5):
        layer.zero_grad()
        y, final, tape = layer.forward(x, state, lengths=lengths, training=False)
        dx, dstate0 = layer.backward(tape, dy, dstate)
        results.append({"y": y, "dx": dx, **{f"grads[{k!r}]": g.copy() for k, g in layer.grads.items()}})
        results[-1].update({f"final {k}": s for k, s in enumerate(state_list(final))})
        results[-1].update({f"dstate0 {k}": s for k, s in enumerate(state_list(dstate0))})
    plain, with_lengths = results
    for name, expected in plain.items():
        assert_close(name, with_lengths[name], expected, 1e-12, scaled_atol(1e-12, expected))


@variants()
@dtypes
def test_padded_dy_has_no_effect_on_any_gradient(variant, dtype):
    # The same computation with other values in the steps never read: bitwise equal. In
    # training mode, with dropout between the layers (and zoneout's masks): a fresh layer
    # per run, built with the same seed, draws the same masks.
    def fresh_layer():
        return make_layer(variant, 2, True, True, dtype, dropout=0.25)

    x, state, dy, dstate = inputs(fresh_layer(), UNSORTED, with_state=True, with_dstate=True)
    rng = np.random.default_rng(7)
    fills = {
        "zero": lambda shape: np.zeros(shape),
        "large": lambda shape: rng.normal(scale=1e6, size=shape),
        "nan": lambda shape: np.full(shape, np.nan),
    }
    results = {}
    for fill, values in fills.items():
        layer = fresh_layer()
        for b, length in enumerate(UNSORTED):
            pad = padding(dy, layer, b, length)
            pad[...] = values(pad.shape)
        _, _, tape = layer.forward(x, state, lengths=UNSORTED, training=True)
        dx, dstate0 = layer.backward(tape, dy, dstate)
        results[fill] = {"dx": dx, **{f"dstate0 {k}": part for k, part in enumerate(state_list(dstate0))}}
        results[fill].update({f"grads[{name!r}]": grad for name, grad in layer.grads.items()})
    for fill in ("large", "nan"):
        for name, expected in results["zero"].items():
            np.testing.assert_array_equal(results[fill][name], expected, err_msg=f"{name} with {fill} padded dy")


@variants("lstm", "gru")
def test_call_with_lengths_equals_inference_forward(variant):
    layer = make_layer(variant, 2, True, True, np.float32)
    x, state, _, _ = inputs(layer, UNSORTED, with_state=True, with_dstate=False)
    y, final = layer(x, state, lengths=UNSORTED)
    y_forward, final_forward, _ = layer.forward(x, state, lengths=UNSORTED, training=False)
    np.testing.assert_array_equal(y, y_forward)
    for part, part_forward in zip(state_list(final), state_list(final_forward)):
        np.testing.assert_array_equal(part, part_forward)
    for b, length in enumerate(UNSORTED):
        np.testing.assert_array_equal(padding(y, layer, b, length), 0)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(list(UNSORTED), id="list"),
        pytest.param(tuple(UNSORTED), id="tuple"),
        pytest.param(np.array(UNSORTED, np.int32), id="int32"),
        pytest.param(np.array(UNSORTED, np.uint8), id="uint8"),
        pytest.param(np.array(UNSORTED, np.float64), id="integral-floats"),
    ],
)
def test_lengths_accept_any_integer_array_like(given):
    layer = make_layer("lstm", 1, True, True, np.float64)
    x, _, _, _ = inputs(layer, UNSORTED, with_state=False, with_dstate=False)
    expected, _ = layer(x, lengths=np.array(UNSORTED, np.int64))
    got, _ = layer(x, lengths=given)
    np.testing.assert_array_equal(got, expected)


BAD_LENGTHS = {
    # id: (lengths for B=5, T=7, error type, fragments the message must contain)
    "too-long": ([3, 7, 1, 7, 5, 2], ValueError, ["(5,)", "(6,)"]),
    "too-short": ([3, 7, 1, 7], ValueError, ["(5,)", "(4,)"]),
    "2-d": ([[3, 7, 1, 7, 5]], ValueError, ["(5,)", "(1, 5)"]),
    "scalar": (3, ValueError, ["(5,)", "()"]),
    "zero": ([3, 0, 1, 7, 5], ValueError, ["[1, 7]", "0"]),
    "past-T": ([3, 8, 1, 7, 5], ValueError, ["[1, 7]", "8"]),
    "negative": ([3, -2, 1, 7, 5], ValueError, ["[1, 7]", "-2"]),
    "fractional": ([3, 2.5, 1, 7, 5], TypeError, ["integer", "non-integral"]),
    "nan": ([3, np.nan, 1, 7, 5], TypeError, ["integer", "non-integral"]),
    "booleans": ([True, True, True, False, True], TypeError, ["integer", "boolean"]),
    "strings": (["3", "7", "1", "7", "5"], TypeError, ["numeric", "dtype <U1"]),
}


@variants("lstm", "gru")
@pytest.mark.parametrize("entry", ["call", "forward"])
@pytest.mark.parametrize("bad", list(BAD_LENGTHS.values()), ids=list(BAD_LENGTHS))
def test_bad_lengths_are_rejected_naming_expected_and_given(variant, entry, bad):
    lengths, error, fragments = bad
    layer = make_layer(variant, 1, False, True, np.float32)
    x = np.zeros((5, STEPS, INPUT), np.float32)
    run = layer if entry == "call" else layer.forward
    with pytest.raises(error) as raised:
        run(x, lengths=lengths)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
