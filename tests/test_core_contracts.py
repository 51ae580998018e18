"""The core functions' own contracts, below the layers: what they write, what they add to,
what they refuse.

- Backward writes dx (padding steps zero) unless ``accumulate_dx``, when it adds to it and
  leaves what it has no gradient for alone: a dx buffer full of NaN must come back
  without one, or with NaN exactly where nothing was added.
- A forward without a tape (gates and cells None) writes the same y and c_n as one with.
- The core reads a batch-first sequence as the time-major one.
- Anything but an array for an optional buffer (an LSTM's clamps or masks) is a TypeError,
  never a pointer into a freed temporary. Every kernel's tape is the core's own object, and
  its backward takes nothing else (nor a forward's tape kept without gates).
- The cache read rate (`_core.read_rate_gbps`, which the inference benchmark reports)
  refuses a size or a time it cannot measure, saying what it expected.
Comparisons between two calls of the same core in float64: the same expressions, summed
in the same order (or, batch-first, the same products over other strides), so 1e-13.
"""

import numpy as np
import pytest

import lstmcore
from _compare import assert_close
from lstmcore import _core

TOL = 1e-13
STEPS, BATCH, INPUT, HIDDEN = 5, 4, 6, 7


def lstm_arrays(seed, batch_first=False):
    rng = np.random.default_rng(seed)
    layer = lstmcore.LSTM(INPUT, HIDDEN, dtype=np.float64, seed=seed)
    p = {k[: -len("_l0")]: v for k, v in layer.params.items()}
    shape = (BATCH, STEPS) if batch_first else (STEPS, BATCH)
    x = rng.normal(size=shape + (INPUT,))
    dy = rng.normal(size=shape + (HIDDEN,))
    h0, c0 = rng.normal(size=(2, BATCH, HIDDEN))
    weights = [p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]]
    return layer, x, dy, h0, c0, weights


def run_lstm(x, weights, h0, c0, *, batch_first=False, taped=True, batch_sizes=None):
    """y, the core's tape and c_n (a view of the tape)."""
    y = np.empty(x.shape[:2] + (HIDDEN,))
    options = _core.PassOptions(batch_first=batch_first, batch_sizes=batch_sizes)
    tape = _core.lstm_forward(x, _core.LstmWeights(*weights), h0, c0, y, options, _core.LstmOptions(), taped)
    return y, tape, tape.cells, tape.c_n


def lstm_dx(x, dy, weights, h0, c0, dx, accumulate, batch_sizes=None):
    _, tape, _, _ = run_lstm(x, weights, h0, c0, batch_sizes=batch_sizes)
    grads = [np.zeros_like(w) for w in weights]
    dh0, dc0 = np.empty((2, BATCH, HIDDEN))
    _core.lstm_backward(
        tape, _core.LstmWeights(*weights), dy, None, None, _core.LstmWeights(*grads), dx, dh0, dc0,
        accumulate_dx=accumulate,
    )  # fmt: skip
    return dx


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_backward_writes_dx_unless_told_to_add(with_lengths):
    _, x, dy, h0, c0, weights = lstm_arrays(1)
    sizes = np.array([4, 4, 2, 1, 0], np.int64) if with_lengths else None  # rows alive per step
    written = lstm_dx(x, dy, weights, h0, c0, np.full_like(x, np.nan), False, sizes)
    assert not np.isnan(written).any(), "every element written, padding included"
    if with_lengths:
        alive = np.arange(BATCH)[None, :] < sizes[:, None]
        assert not written[~alive].any(), "padding steps get a zero gradient"
    added = lstm_dx(x, dy, weights, h0, c0, np.ones_like(x), True, sizes)
    assert_close("dx added to ones", added, written + 1, TOL, TOL)


def test_a_forward_without_a_tape_writes_the_same_output_and_final_cells():
    _, x, _, h0, c0, weights = lstm_arrays(2)
    sizes = np.array([4, 3, 3, 1, 1], np.int64)
    y, _, cells, c_n = run_lstm(x, weights, h0, c0, batch_sizes=sizes)
    y_untaped, _, _, c_n_untaped = run_lstm(x, weights, h0, c0, taped=False, batch_sizes=sizes)
    assert_close("y", y_untaped, y, TOL, TOL)
    assert_close("c_n", c_n_untaped, c_n, TOL, TOL)
    last = np.array([(sizes > b).sum() - 1 for b in range(BATCH)])  # each row's last step
    assert_close("c_n is each row's last cell", c_n, cells[last, np.arange(BATCH)], 0, 0)


def test_the_core_reads_batch_first_sequences_as_time_major_ones():
    _, x, _, h0, c0, weights = lstm_arrays(3)
    y, _, _, c_n = run_lstm(x, weights, h0, c0)
    y_bf, _, _, c_n_bf = run_lstm(np.ascontiguousarray(x.transpose(1, 0, 2)), weights, h0, c0, batch_first=True)
    assert_close("y", y_bf.transpose(1, 0, 2), y, TOL, TOL)
    assert_close("c_n", c_n_bf, c_n, TOL, TOL)


def test_optional_buffers_must_be_arrays_and_a_tape_comes_whole():
    _, x, dy, h0, c0, weights = lstm_arrays(4)
    y = np.empty((STEPS, BATCH, HIDDEN))
    lstm_weights, options = _core.LstmWeights(*weights), _core.PassOptions()
    clamps = [np.zeros(HIDDEN).tolist(), None, None, None]
    with pytest.raises(TypeError, match="clamp as a NumPy array, got list"):
        _core.lstm_forward(x, lstm_weights, h0, c0, y, options, _core.LstmOptions(clamps=clamps), True)
    mask = np.ones((BATCH, HIDDEN)).tolist()
    with pytest.raises(TypeError, match="recurrent_mask as a NumPy array, got list"):
        _core.lstm_forward(x, lstm_weights, h0, c0, y, options, _core.LstmOptions(recurrent_mask=mask), True)
    half = _core.LstmOptions(zoneout_h=np.zeros((STEPS, BATCH, HIDDEN)))
    with pytest.raises(ValueError, match="zoneout needs both masks"):
        _core.lstm_forward(x, lstm_weights, h0, c0, y, options, half, True)
    untaped = _core.lstm_forward(x, lstm_weights, h0, c0, y, options, _core.LstmOptions(), False)
    assert untaped.gates is None and untaped.cells is None and untaped.cell_updates is None
    dx, dh0, dc0 = np.empty_like(x), np.empty((BATCH, HIDDEN)), np.empty((BATCH, HIDDEN))
    grads = _core.LstmWeights(*(np.zeros_like(w) for w in weights))
    with pytest.raises(ValueError, match="a tape from a forward with taped=True, got one without"):
        _core.lstm_backward(untaped, lstm_weights, dy, None, None, grads, dx, dh0, dc0)
    with pytest.raises(ValueError, match=r"y_offset \+ 7 <= its width, got shape \(5, 4, 7\) and y_offset 3"):
        _core.lstm_forward(x, lstm_weights, h0, c0, y, _core.PassOptions(y_offset=3), _core.LstmOptions(), True)


def test_projected_layer_norm_and_gru_tapes_are_the_cores_own():
    _, x, _, h0, c0, weights = lstm_arrays(5)
    proj = 3
    weight_hh = np.random.default_rng(5).normal(size=(4 * HIDDEN, proj))
    weight_hr = np.random.default_rng(6).normal(size=(proj, HIDDEN))
    y = np.empty((STEPS, BATCH, proj))
    projected = _core.ProjectedLstmWeights(weights[0], weight_hh, *weights[2:], weight_hr)
    h0_projected, options = np.ascontiguousarray(h0[:, :proj]), _core.PassOptions()
    masked = _core.LstmOptions(recurrent_mask=np.ones((BATCH, HIDDEN)))
    with pytest.raises(ValueError, match="the projected LSTM takes no recurrent_mask or zoneout"):
        _core.projected_lstm_forward(x, projected, h0_projected, c0, y, options, masked, True)
    untaped = _core.projected_lstm_forward(x, projected, h0_projected, c0, y, options, _core.LstmOptions(), False)
    assert untaped.gates is None and untaped.cell_out is None and untaped.c_n.shape == (BATCH, HIDDEN)
    grads = _core.ProjectedLstmWeights(*(np.zeros_like(w) for w in (weights[0], weight_hh, *weights[2:], weight_hr)))
    dh0, dc0 = np.empty((BATCH, proj)), np.empty((BATCH, HIDDEN))
    with pytest.raises(ValueError, match="a tape from a forward with taped=True, got one without"):
        _core.projected_lstm_backward(untaped, projected, y, None, None, grads, np.empty_like(x), dh0, dc0)
    norm = lstmcore.LSTM(INPUT, HIDDEN, layer_norm=True, dtype=np.float64, seed=5)
    kinds = ("layer_norm_ih_weight", "layer_norm_hh_weight", "layer_norm_cell_weight", "layer_norm_cell_bias")
    gains = [norm.params[f"{kind}_l0"] for kind in kinds]
    norm_weights = _core.LayerNormLstmWeights(*weights, *gains)
    y_norm = np.empty((STEPS, BATCH, HIDDEN))
    with pytest.raises(ValueError, match="expected cell 'plain' for the layer-norm LSTM, got 'coupled'"):
        _core.layer_norm_lstm_forward(x, norm_weights, h0, c0, y_norm, options, _core.LstmOptions(cell="coupled"), True)
    clamps = _core.LstmOptions(clamps=[None, np.ones(HIDDEN).tolist(), None, None])
    with pytest.raises(TypeError, match="clamp as a NumPy array, got list"):
        _core.layer_norm_lstm_forward(x, norm_weights, h0, c0, y_norm, options, clamps, True)
    tape = _core.layer_norm_lstm_forward(x, norm_weights, h0, c0, y_norm, options, _core.LstmOptions(), True)
    assert tape.inv_std.shape == (STEPS, BATCH, 3) and tape.input_norm.shape == (STEPS, BATCH, 4 * HIDDEN)
    gru = lstmcore.GRU(INPUT, HIDDEN, dtype=np.float64, seed=5)
    p = [gru.params[name] for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    y_gru = np.empty((STEPS, BATCH, HIDDEN))
    # The GRU's tape is the core's own: Python hands nothing in, and gets a read-only view
    # that outlives the tape object it came from.
    gru_weights = _core.GruWeights(*p)
    tape = _core.gru_forward(x, gru_weights, h0, y_gru, _core.PassOptions(), True)
    gates = tape.gates
    del tape
    assert gates.shape[:2] == (STEPS, BATCH) and not gates.flags.writeable and np.isfinite(gates).all()
    assert _core.gru_forward(x, gru_weights, h0, y_gru, _core.PassOptions(), False) is None
    dh0, dx = np.empty((BATCH, HIDDEN)), np.empty_like(x)
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.gru_backward(gates, gru_weights, y_gru, None, gru_weights, dx, dh0)


def test_the_read_rate_measures_a_buffer_and_refuses_what_it_cannot():
    # Any positive size, down to part of one packet; the rate itself belongs to benchmarks.
    for size in (1, 100, 64 << 10):
        rate = _core.read_rate_gbps(size, seconds=0.0)
        assert np.isfinite(rate) and rate > 0, (size, rate)
    for size in (0, -1, (1 << 30) + 1):
        with pytest.raises(ValueError, match=rf"expected bytes in \[1, 1073741824\], got {size}"):
            _core.read_rate_gbps(size)
    for seconds in (-1.0, float("nan"), 61.0):
        with pytest.raises(ValueError, match="expected seconds in"):
            _core.read_rate_gbps(1024, seconds=seconds)
