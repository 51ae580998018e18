"""lstmcore.prepare: inference-only snapshots of layers and models.

A prepared layer or model gives the plain call's results bit for bit (every cell kind and
option, stacked, bidirectional, both layouts, both dtypes, with and without a state, the
general route with lengths and gate traces, ``step``), is a snapshot that no later change
to the original reaches, refuses what is not inference, and may be called from several
Python threads at once.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import lstmcore
from lstmcore import GRU, LSTM, RNN, Dense, LastStep, Sequential
from lstmcore.inference import PreparedLayer, PreparedModel

INPUT, HIDDEN, STEPS, BATCH = 5, 6, 7, 3

LAYERS = {
    "lstm": (LSTM, {}),
    "lstm-peephole": (LSTM, {"peephole": True}),
    "lstm-coupled": (LSTM, {"coupled": True}),
    "lstm-projected": (LSTM, {"proj_size": 4}),
    "lstm-layer-norm": (LSTM, {"layer_norm": True}),
    "lstm-zoneout": (LSTM, {"zoneout": 0.3}),
    "lstm-activations": (LSTM, {"activation": "relu", "clip": 2.0}),
    "lstm-stacked-bidirectional": (LSTM, {"num_layers": 2, "bidirectional": True}),
    "lstm-time-major": (LSTM, {"batch_first": False}),
    "lstm-reverse": (LSTM, {"reverse": True}),
    "gru": (GRU, {}),
    "gru-reset-before": (GRU, {"reset_after": False}),
    "gru-stacked-bidirectional-time-major": (GRU, {"num_layers": 2, "bidirectional": True, "batch_first": False}),
    "rnn-relu": (RNN, {"nonlinearity": "relu"}),
    "rnn-no-bias-stacked": (RNN, {"bias": False, "num_layers": 3}),
}
DTYPES = [np.float32, np.float64]


def make(case, dtype):
    kind, options = LAYERS[case]
    return kind(INPUT, HIDDEN, dtype=dtype, seed=3, **options)


def inputs(layer, dtype, seed=0):
    rng = np.random.default_rng(seed)
    shape = (BATCH, STEPS, INPUT) if layer.batch_first else (STEPS, BATCH, INPUT)
    x = rng.standard_normal(shape).astype(dtype)
    directions = layer.num_layers * layer.num_directions
    sizes = [layer.output_size] + ([layer.hidden_size] if isinstance(layer, LSTM) else [])
    parts = [rng.standard_normal((directions, BATCH, size)).astype(dtype) for size in sizes]
    return x, (tuple(parts) if isinstance(layer, LSTM) else parts[0])


def states(state):
    return list(state) if isinstance(state, tuple) else [state]


def assert_identical(got, expected):
    y, state = got
    y_expected, state_expected = expected
    assert y.dtype == y_expected.dtype and y.shape == y_expected.shape
    assert np.array_equal(y, y_expected)
    for part, expected_part in zip(states(state), states(state_expected), strict=True):
        assert part.dtype == expected_part.dtype and np.array_equal(part, expected_part)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(LAYERS))
def test_prepared_layer_gives_the_plain_call_bit_for_bit(case, dtype):
    layer = make(case, dtype)
    prepared = lstmcore.prepare(layer)
    assert isinstance(prepared, PreparedLayer)
    x, state = inputs(layer, dtype)
    assert_identical(prepared(x), layer(x))
    assert_identical(prepared(x, state), layer(x, state))
    # The general route: another dtype, a list, a strided view, lengths, gate traces.
    assert_identical(prepared(x.astype(np.float16)), layer(x.astype(np.float16)))
    assert_identical(prepared(x.tolist()), layer(x.tolist()))
    # A dtype equal to the layer's but not NumPy's own object (as a memmap's can be), and
    # an unaligned buffer: the core takes neither as it is.
    tagged = x.view(np.dtype(x.dtype, metadata={"unit": "volts"}))
    assert_identical(prepared(tagged), layer(tagged))
    unaligned = np.frombuffer(b"\0" + x.tobytes(), x.dtype, offset=1).reshape(x.shape)
    assert not unaligned.flags.aligned
    assert_identical(prepared(unaligned, state), layer(unaligned, state))
    strided = np.swapaxes(np.swapaxes(x, 0, 1).copy(), 0, 1)
    assert_identical(prepared(strided, state), layer(strided, state))
    if not layer.bidirectional:
        lengths = [STEPS, 2, 5]
        assert_identical(prepared(x, lengths=lengths), layer(x, lengths=lengths))
    y, _, traces = prepared(x, return_gates=True)
    y_expected, _, traces_expected = layer(x, return_gates=True)
    assert np.array_equal(y, y_expected)
    for trace, expected in zip(traces, traces_expected, strict=True):
        assert trace.keys() == expected.keys()
        assert all(np.array_equal(trace[name], expected[name]) for name in trace)


@pytest.mark.parametrize("case", ["lstm", "lstm-projected", "gru", "rnn-relu", "lstm-time-major"])
def test_prepared_step_gives_the_layer_step_bit_for_bit(case):
    layer = make(case, np.float32)
    prepared = lstmcore.prepare(layer)
    x, _ = inputs(layer, np.float32)
    state = state_expected = None
    for t in range(STEPS):
        x_t = x[:, t] if layer.batch_first else x[t]
        y_t, state = prepared.step(x_t, state)
        y_expected, state_expected = layer.step(x_t, state_expected)
        assert_identical((y_t, state), (y_expected, state_expected))


def test_prepared_layer_raises_the_layer_s_errors():
    layer, prepared = LSTM(INPUT, HIDDEN), lstmcore.prepare(LSTM(INPUT, HIDDEN))
    for bad in (np.zeros((BATCH, STEPS, INPUT + 1), np.float32), np.zeros((0, STEPS, INPUT), np.float32), "text"):
        with pytest.raises((ValueError, TypeError)) as expected:
            layer(bad)
        with pytest.raises(type(expected.value), match=str(expected.value).replace("(", r"\(").replace(")", r"\)")):
            prepared(bad)
    x = np.zeros((BATCH, STEPS, INPUT), np.float32)
    with pytest.raises(ValueError, match=r"expected state h of shape \(1, 3, 6\), got \(1, 2, 6\)"):
        prepared(x, (np.zeros((1, 2, HIDDEN), np.float32), np.zeros((1, 2, HIDDEN), np.float32)))
    with pytest.raises(ValueError, match="step needs a layer that runs forward in time"):
        lstmcore.prepare(GRU(INPUT, HIDDEN, bidirectional=True)).step(x[:, 0])


def test_a_prepared_layer_is_a_snapshot_no_change_to_the_original_reaches():
    layer = LSTM(INPUT, HIDDEN, seed=1, peephole=True)
    x, _ = inputs(layer, np.float32)
    prepared = lstmcore.prepare(layer)
    before = prepared(x)
    name = "weight_hh_l0"
    layer.params[name] += 1.0  # in place
    layer.params["bias_ih_l0"] = layer.params["bias_ih_l0"] + 2.0  # replaced
    layer.params["weight_peephole_l0"] = layer.params["weight_peephole_l0"].astype(np.float64)  # another dtype
    assert not np.array_equal(layer(x)[0], before[0])  # the plain call takes the change
    assert_identical(prepared(x), before)
    # Its own parameters are read-only, and handing them out does not open a way in.
    with pytest.raises(ValueError, match="read-only"):
        prepared.params[name][0, 0] = 5.0
    prepared.params[name] = np.zeros_like(layer.params[name])
    assert_identical(prepared(x), before)
    # Preparing again takes the change.
    assert np.array_equal(lstmcore.prepare(layer)(x)[0], layer(x)[0])


def test_a_prepared_layer_is_for_inference_only():
    prepared = lstmcore.prepare(GRU(INPUT, HIDDEN))
    for name in ("forward", "backward", "grads", "zero_grad"):
        with pytest.raises(AttributeError, match=f"a prepared GRU has no '{name}': it is for inference only"):
            getattr(prepared, name)
    assert prepared.hidden_size == HIDDEN and prepared.get_config() == GRU(INPUT, HIDDEN).get_config()
    assert lstmcore.prepare(prepared) is prepared


def test_prepare_refuses_what_it_cannot_prepare():
    for given in (lstmcore.LSTMCell(INPUT, HIDDEN), Dense(INPUT, HIDDEN), "model"):
        with pytest.raises(TypeError, match=f"LSTM, GRU or RNN layer or a Sequential, got {type(given).__name__}"):
            lstmcore.prepare(given)


def model(dtype=np.float32):
    return Sequential(
        [
            LSTM(INPUT, HIDDEN, seed=1, dtype=dtype),
            GRU(HIDDEN, 4, seed=2, dtype=dtype),
            LastStep(),
            Dense(4, 2, seed=3, dtype=dtype),
        ]
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_prepared_model_predicts_bit_for_bit_and_is_a_snapshot(dtype):
    original = model(dtype)
    prepared = lstmcore.prepare(original)
    assert isinstance(prepared, PreparedModel)
    x = np.random.default_rng(0).standard_normal((10, STEPS, INPUT)).astype(dtype)
    expected = original.predict(x, batch_size=4)
    assert np.array_equal(prepared.predict(x, batch_size=4), expected)
    assert np.array_equal(prepared(x[:3]), original(x[:3]))
    lengths = [STEPS, 3, 2, 5, 1, STEPS, 4, 4, 6, 2]
    assert np.array_equal(prepared.predict(x, lengths=lengths), original.predict(x, lengths=lengths))
    for name in list(original.params):
        original.params[name] = original.params[name] * 2
    assert np.array_equal(prepared.predict(x, batch_size=4), expected)
    assert not np.array_equal(original.predict(x, batch_size=4), expected)
    assert prepared.output_is_sequence is False and len(prepared.layers) == 4
    for name in ("fit", "forward", "backward", "save"):
        with pytest.raises(AttributeError, match=f"a prepared model has no '{name}'"):
            getattr(prepared, name)


def test_several_threads_may_call_one_prepared_layer_at_once():
    layer = LSTM(16, 32, num_layers=2, seed=0)
    prepared = lstmcore.prepare(layer)
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((2, 30, 16)).astype(np.float32) for _ in range(4)]
    expected = [layer(x) for x in batches]
    failures = []

    def work(index):
        for _ in range(25):
            got = prepared(batches[index])
            if not (np.array_equal(got[0], expected[index][0]) and np.array_equal(got[1][1], expected[index][1][1])):
                failures.append(index)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
