"""A batch-1 inference forward of an LSTM, a GRU or an RNN runs its input projection
inside the steps' products (cpp/include/lstmcore/interleaved_projection.hpp). Its outputs
must be the bits of the chunked projection, which the taped forward (for backward, or
with return_gates) and a forward with lengths still run, on every shape that the interleaving cuts differently: steps in
the last chunk, depth blocks of W_ih and of W_hh, partial panels, fewer panels than a
chunk has steps, reversed directions, both thread counts, float32 and float64, each LSTM
cell, and the GRU's n gate, whose recurrent part stays apart from its projection."""

import numpy as np
import pytest

import lstmcore
from lstmcore.reference import gru_forward as reference_gru_forward
from lstmcore.reference import lstm_forward as reference_lstm_forward
from lstmcore.reference import vanilla_rnn_forward as reference_rnn_forward

# (input, hidden, steps): 9 and 17 leave one step in the last chunk; I=300 and H=300 cross
# a depth block (256), H=520 two; H=20 has fewer panels (4 gates x 1) than a chunk has
# steps; H=40, 200, 300 and 520 end on a partial panel; I=1, a projection of one depth.
# The threads fixture's two threads split a pass over units only from a step of 200k
# flops: H=200 on (the LSTM, GRU), H=320 (the RNN too).
SHAPES = [
    (16, 32, 9),
    (64, 128, 50),
    (300, 40, 17),
    (7, 300, 12),
    (1, 20, 30),
    (33, 64, 24),
    (300, 200, 17),
    (16, 320, 9),
    (600, 520, 20),
]
CELLS = [{}, {"peephole": True}, {"coupled": True}, {"gate_activation": "hard_sigmoid"}, {"zoneout": 0.25}]


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    previous = lstmcore._core.requested_threads()
    lstmcore.set_num_threads(request.param)
    yield request.param
    lstmcore.set_num_threads(previous)


def _inputs(layer, steps, dtype):
    rng = np.random.default_rng(steps)
    x = rng.standard_normal((1, steps, layer.input_size)).astype(dtype)
    state = tuple(rng.standard_normal((layer.num_directions, 1, layer.hidden_size)).astype(dtype) for _ in range(2))
    return x, state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "I{}-H{}-T{}".format(*s))
def test_inference_forward_has_the_taped_forwards_bits(shape, dtype, threads):
    inputs, hidden, steps = shape
    layer = lstmcore.LSTM(inputs, hidden, bidirectional=True, dtype=dtype, seed=hidden)
    x, state = _inputs(layer, steps, dtype)
    y, (h_n, c_n) = layer(x, state)
    y_taped, (h_taped, c_taped), _ = layer(x, state, return_gates=True)
    np.testing.assert_array_equal(y, y_taped)
    np.testing.assert_array_equal(h_n, h_taped)
    np.testing.assert_array_equal(c_n, c_taped)
    np.testing.assert_array_equal(lstmcore.prepare(layer)(x, state)[0], y)


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: ",".join(c) or "plain")
def test_every_lstm_cell_interleaves_to_the_same_bits(cell, threads):
    layer = lstmcore.LSTM(24, 48, seed=3, **cell)
    x, state = _inputs(layer, 21, np.float32)
    y, final = layer(x, state)
    y_taped, final_taped, _ = layer(x, state, return_gates=True)
    np.testing.assert_array_equal(y, y_taped)
    np.testing.assert_array_equal(final[1], final_taped[1])


def test_interleaved_forward_matches_the_numpy_reference_in_float64():
    layer = lstmcore.LSTM(300, 40, dtype=np.float64, seed=0)
    x, state = _inputs(layer, 19, np.float64)
    y, (h_n, c_n) = layer(x, state)
    p = layer.params
    y_ref, h_ref, c_ref, _ = reference_lstm_forward(
        x[0][:, None], p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"], state[0][0], state[1][0]
    )
    np.testing.assert_allclose(y[0], y_ref[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n[0], h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c_n[0], c_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps", [257, 513])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_last_step_alone_in_its_chunk_has_the_chunked_bits(kind, steps, threads):
    # The chunked projection takes 256 steps at a time at batch 1 and sums a chunk of one
    # row (the last step, at T = 1 + 256k) by the batch-1 split, not as a tile's row.
    layer = (lstmcore.LSTM if kind == "lstm" else lstmcore.GRU)(300, 40, seed=2)
    x = np.random.default_rng(steps).standard_normal((1, steps, 300)).astype(np.float32)
    y, _ = layer(x)
    y_taped, _, _ = layer(x, return_gates=True)
    np.testing.assert_array_equal(y, y_taped)


@pytest.mark.parametrize("length", [5, 8, 9, 17, 29, 30])
def test_a_sequence_shorter_than_its_input_is_its_own_prefix(length, threads):
    # lengths at batch 1: the steps past the sequence's end run no product (reversed, they
    # come first), so such a pass must not interleave
    layer = lstmcore.LSTM(16, 32, bidirectional=True, seed=0)
    x, _ = _inputs(layer, 30, np.float32)
    y, (h_n, c_n) = layer(x, lengths=[length])
    y_taped, (h_taped, _), _ = layer(x, lengths=[length], return_gates=True)
    np.testing.assert_array_equal(y, y_taped)
    np.testing.assert_array_equal(h_n, h_taped)
    prefix, (h_prefix, c_prefix) = layer(x[:, :length])
    np.testing.assert_allclose(y[:, :length], prefix, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_n, h_prefix, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_n, c_prefix, rtol=1e-5, atol=1e-6)
    assert not y[:, length:].any()


@pytest.mark.parametrize("itemsize", [4, 8])
def test_interleaving_stops_where_the_weights_outgrow_the_cache(itemsize):
    # W_ih and W_hh together: (I + H) * 4H values. Past 16 MB on one thread and 11 MB on
    # more, rereading W_ih every 8 steps pushes W_hh out of the last level of cache.
    interleaves = lstmcore._core.diagnostics.interleaves_projection
    tiles_of_eight = lstmcore._core.diagnostics.tile_rows == 8

    def hidden_for(megabytes):  # the largest I = H whose weights fit in `megabytes`
        return int((megabytes * 2**20 / (8 * itemsize)) ** 0.5)

    one, more = hidden_for(16), hidden_for(11)
    assert interleaves(64, 128, 50, 4, itemsize, 1) is tiles_of_eight
    assert interleaves(one, one, 50, 4, itemsize, 1) is tiles_of_eight
    assert interleaves(one + 1, one + 1, 50, 4, itemsize, 1) is False
    assert interleaves(more, more, 50, 4, itemsize, 2) is tiles_of_eight
    assert interleaves(more + 1, more + 1, 50, 4, itemsize, 2) is False
    assert interleaves(more + 1, more + 1, 50, 4, itemsize, 1) is tiles_of_eight
    # Three gate blocks (a coupled cell) weigh less, and the bound is on bytes.
    assert interleaves(one + 1, one + 1, 50, 3, itemsize, 1) is tiles_of_eight
    # One chunk of steps, or none, has nothing to interleave.
    assert interleaves(64, 128, 8, 4, itemsize, 1) is False


@pytest.mark.parametrize("gates", [4, 3], ids=["lstm", "gru"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_forward_past_the_bound_has_the_interleaved_bits(threads, gates):
    # Just past the two-thread bound in float64: two threads chunk, one thread interleaves;
    # either way the bits are the taped forward's.
    previous = lstmcore._core.requested_threads()
    lstmcore.set_num_threads(threads)
    try:
        hidden = int((11 * 2**20 / (2 * gates * 8)) ** 0.5) + 1
        assert lstmcore._core.diagnostics.interleaves_projection(hidden, hidden, 10, gates, 8, 2) is False
        layer = (lstmcore.LSTM if gates == 4 else lstmcore.GRU)(hidden, hidden, dtype=np.float64, seed=5)
        x = np.random.default_rng(5).standard_normal((1, 10, hidden))
        y, final = layer(x)
        y_taped, final_taped, _ = layer(x, return_gates=True)
        np.testing.assert_array_equal(y, y_taped)
        np.testing.assert_array_equal(final[-1] if gates == 4 else final, final_taped[-1] if gates == 4 else final_taped)
    finally:
        lstmcore.set_num_threads(previous)


def _one_state_inputs(layer, steps, dtype):
    rng = np.random.default_rng(steps)
    x = rng.standard_normal((1, steps, layer.input_size)).astype(dtype)
    return x, rng.standard_normal((layer.num_directions, 1, layer.hidden_size)).astype(dtype)


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset-after", "reset-before"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "I{}-H{}-T{}".format(*s))
def test_gru_inference_forward_has_the_taped_forwards_bits(shape, dtype, reset_after, threads):
    # Reset-before's n product waits for r and does not interleave: the same check holds.
    inputs, hidden, steps = shape
    layer = lstmcore.GRU(inputs, hidden, bidirectional=True, dtype=dtype, seed=hidden, reset_after=reset_after)
    x, h0 = _one_state_inputs(layer, steps, dtype)
    y, h_n = layer(x, h0)
    y_taped, h_taped, _ = layer(x, h0, return_gates=True)
    np.testing.assert_array_equal(y, y_taped)
    np.testing.assert_array_equal(h_n, h_taped)
    np.testing.assert_array_equal(lstmcore.prepare(layer)(x, h0)[0], y)


RNN_NONLINEARITIES = ["tanh", "relu", ("hard_sigmoid", 0.3, 0.4)]


@pytest.mark.parametrize("nonlinearity", RNN_NONLINEARITIES, ids=lambda n: n if isinstance(n, str) else n[0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [*SHAPES, (300, 40, 257)], ids=lambda s: "I{}-H{}-T{}".format(*s))
def test_rnn_inference_forward_has_the_chunked_bits(shape, dtype, nonlinearity, threads):
    # A tanh or relu RNN's forward keeps no tape, so the oracle is the forward with
    # lengths, which never interleaves.
    inputs, hidden, steps = shape
    layer = lstmcore.RNN(inputs, hidden, bidirectional=True, dtype=dtype, seed=hidden, nonlinearity=nonlinearity)
    x, h0 = _one_state_inputs(layer, steps, dtype)
    y, h_n = layer(x, h0)
    y_chunked, h_chunked = layer(x, h0, lengths=[steps])
    np.testing.assert_array_equal(y, y_chunked)
    np.testing.assert_array_equal(h_n, h_chunked)
    np.testing.assert_array_equal(lstmcore.prepare(layer)(x, h0)[0], y)


@pytest.mark.parametrize(
    "kind, reference", [(lstmcore.GRU, reference_gru_forward), (lstmcore.RNN, reference_rnn_forward)], ids=["gru", "rnn"]
)
def test_interleaved_gru_and_rnn_match_the_numpy_reference_in_float64(kind, reference):
    layer = kind(300, 40, dtype=np.float64, seed=0)
    x, h0 = _one_state_inputs(layer, 19, np.float64)
    y, h_n = layer(x, h0)
    p = layer.params
    y_ref, h_ref, _ = reference(x[0][:, None], p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"], h0[0])
    np.testing.assert_allclose(y[0], y_ref[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n[0], h_ref, rtol=1e-12, atol=1e-12)
