"""Inference without a tape: ``layer(x)`` on every LSTM cell (plain, peephole, coupled,
projected, layer-normalised) and on the GRU keeps no gate tape (the core projects the
input a chunk of steps ahead into a reused buffer; the LSTM keeps only two rows of
cells), and must give what the taped ``forward(..., training=False)`` gives, which the
other test files check against the reference.

Both paths project the input in the same chunks with the same products and run the same
cell, only into other buffers, so they must agree exactly (tolerance 0).
"""

import numpy as np
import pytest

from _compare import assert_close
from _layers import move_off_initialisation, pass_split, random_state
from _variants import dtypes, layer_variants, variants

CELLS = layer_variants(
    "lstm", "peephole", "coupled", "zoneout", "projected", "peephole_projected", "layer_norm", "gru", proj_size=16
)
# (steps, batch): the core's chunk is 256 // B steps, so these have several chunks, a
# ragged last one, one step per chunk (B > 256) and one chunk for the whole sequence.
SHAPES = {"B40-3-chunks": (17, 40), "B300-chunk-of-one-step": (3, 300), "B2-one-chunk": (23, 2), "B64-T1": (1, 64)}


def layer_and_inputs(cell, dtype, steps, batch, bidirectional, batch_first, seed, hidden=24):
    layer_class, options = CELLS[cell]
    layer = layer_class(
        5, hidden, num_layers=2, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, seed=seed,
        **options,
    )  # fmt: skip
    move_off_initialisation(layer, seed)
    rng = np.random.default_rng(seed)
    shape = (batch, steps, 5) if batch_first else (steps, batch, 5)
    return layer, rng.normal(size=shape).astype(dtype), random_state(layer, batch, rng), rng


def state_parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def assert_same_inference(got, expected):
    (y, final), (y_taped, final_taped) = got, expected
    assert_close("y", y, y_taped, 0, 0)
    parts, parts_taped = state_parts(final), state_parts(final_taped)
    assert len(parts) == len(parts_taped)
    for name, a, b in zip(("h_n", "c_n"), parts, parts_taped):
        assert_close(name, a, b, 0, 0)


@dtypes
@variants(*CELLS, argname="cell")
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["unidirectional", "bidirectional"])
def test_inference_without_tape_matches_the_taped_forward(dtype, cell, shape, bidirectional):
    steps, batch = shape
    layer, x, state, _ = layer_and_inputs(cell, dtype, steps, batch, bidirectional, True, seed=1)
    y_taped, final_taped, _ = layer.forward(x, state, training=False)
    assert_same_inference(layer(x, state), (y_taped, final_taped))


@variants(*CELLS, argname="cell")
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("steps, batch, split", [(30, 40, "batch"), (50, 12, "units")], ids=["batch-split", "units-split"])
def test_inference_without_tape_matches_on_two_threads_across_chunks(cell, with_lengths, steps, batch, split, two_threads):
    # H = 64 on two threads (the tests above run on one at H = 24). B = 40 splits the batch
    # rows (20 a thread: chunks of 12 steps), B = 12 the units (chunks of 21 steps; the
    # projected LSTM splits units at both), so three projection chunks go round and the
    # reused buffers (the chunk's, the layer-norm step buffer and its rows normalised by
    # their reader, the projected r_t) are written and read by both threads several times.
    layer, x, state, rng = layer_and_inputs(cell, np.float32, steps, batch, True, True, seed=4, hidden=64)
    lengths = None
    if with_lengths:
        lengths = rng.integers(steps // 2, steps + 1, size=batch)
        lengths[0] = steps
    gates = 3 if cell == "gru" else 4
    sorted_lengths = None if lengths is None else np.sort(lengths)[::-1]
    assert pass_split(batch, 5, 64, gates, np.float32, False, sorted_lengths) == (2, split)
    y_taped, final_taped, _ = layer.forward(x, state, lengths=lengths, training=False)
    assert_same_inference(layer(x, state, lengths=lengths), (y_taped, final_taped))


@dtypes
@variants(*CELLS, argname="cell")
def test_inference_without_tape_matches_with_lengths_time_major_and_ablation(dtype, cell):
    steps, batch = 17, 40
    layer, x, state, rng = layer_and_inputs(cell, dtype, steps, batch, True, False, seed=2)
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[0] = steps
    ablate = {"coupled": {"input": 0.5}, "gru": None}.get(cell, {"forget": 1.0})
    y_taped, final_taped, _ = layer.forward(x, state, lengths=lengths, ablate=ablate, training=False)
    got = layer(x, state, lengths=lengths, ablate=ablate)
    assert_same_inference(got, (y_taped, final_taped))
    padding = np.arange(steps)[:, None] >= lengths[None, :]
    assert not got[0][padding].any(), "padding steps are zero"


@pytest.mark.parametrize("cell, gate", [("lstm", "forget"), ("gru", "update")])
def test_inference_keeps_no_tape_but_gate_traces_do(cell, gate):
    layer, x, state, _ = layer_and_inputs(cell, np.float32, 9, 40, False, True, seed=3)
    _, _, tape = layer._forward(
        x, state, lengths=None, ablate=None, training=False, for_backward=False, traced=False
    )  # what __call__ runs without return_gates
    if cell == "gru":
        assert all(run.tape is None for run in tape.runs)
    else:
        assert all(run.tape.gates is None and run.tape.cells is None for run in tape.runs)
    y, final, traces = layer(x, state, return_gates=True)
    assert traces[0][gate].shape == (9, 40, 24)
    assert_same_inference((y, final), layer(x, state))
