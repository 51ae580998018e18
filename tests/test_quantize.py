"""lstmcore.quantize: prepared LSTM, GRU and RNN layers and models in int8 and bfloat16.

A quantized layer is called as the layer is and runs the layer's own options (every LSTM
cell form, the GRU, the RNN with tanh and relu, stacked, bidirectional, both layouts,
lengths, ablation, a state in and out, step); a sequence's result does not depend on the batch it is in (lengths, the thread
split); it is a snapshot of the weights it was given; its error against float32 stays
within the bounds measured here; what it cannot do, it refuses.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import lstmcore
from lstmcore import GRU, LSTM, RNN, Dense, LastStep, Sequential
from lstmcore.inference import PreparedModel, ReducedLayer
from lstmcore.inference._quantization import restored

PRECISIONS = ["int8", "bfloat16"]
INPUT, HIDDEN, STEPS, BATCH = 6, 20, 9, 4

LAYERS = {
    "plain": (LSTM, {}),
    "peephole": (LSTM, {"peephole": True}),
    "coupled": (LSTM, {"coupled": True}),
    "peephole-coupled": (LSTM, {"peephole": True, "coupled": True}),
    "activations": (LSTM, {"activation": "relu", "clip": 2.0}),
    "zoneout": (LSTM, {"zoneout": 0.3}),
    "stacked-bidirectional": (LSTM, {"num_layers": 2, "bidirectional": True}),
    "time-major": (LSTM, {"batch_first": False}),
    "reverse": (LSTM, {"reverse": True}),
    "no-bias": (LSTM, {"bias": False}),
    "projected": (LSTM, {"proj_size": 7}),
    "projected-stacked-bidirectional-peephole": (
        LSTM,
        {"proj_size": 5, "num_layers": 2, "bidirectional": True, "peephole": True},
    ),
    "gru": (GRU, {}),
    "gru-stacked-bidirectional-time-major": (GRU, {"num_layers": 2, "bidirectional": True, "batch_first": False}),
    "rnn-tanh": (RNN, {}),
    "rnn-relu-stacked-no-bias": (RNN, {"nonlinearity": "relu", "num_layers": 2, "bias": False}),
}

# Max and mean |quantized - float32| of a layer's outputs bound here, about three times
# what these layers gave (seed 3, x ~ N(0, 1)): int8 0.0010-0.0022 max and 0.00019-0.00033
# mean for the LSTMs, up to 0.009 and 0.0013 for the GRU and RNN; bfloat16 about a third.
BOUNDS = {"int8": (0.015, 0.003), "bfloat16": (0.006, 0.001)}


def make(case, **extra):
    kind, options = LAYERS[case]
    return kind(INPUT, HIDDEN, seed=3, **options, **extra)


def inputs(layer, seed=0, batch=BATCH, steps=STEPS):
    rng = np.random.default_rng(seed)
    shape = (batch, steps, INPUT) if layer.batch_first else (steps, batch, INPUT)
    return rng.standard_normal(shape).astype(np.float32)


def dequantized(layer, quantized):
    """The float32 layer whose weights are the values the quantized one holds."""
    twin = type(layer)(**layer.get_config())
    twin.params.update({name: value.copy() for name, value in quantized.params.items()})
    return twin


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", LAYERS)
def test_a_quantized_layer_stays_near_float32_and_nearer_its_own_weights_in_float32(case, precision):
    layer = make(case)
    x = inputs(layer)
    quantized = lstmcore.quantize(layer, precision)
    assert isinstance(quantized, ReducedLayer) and quantized.precision == precision
    y, state = quantized(x)
    y_float, state_float = layer(x)
    assert y.dtype == np.float32 and y.shape == y_float.shape
    assert [part.shape for part in parts(state)] == [part.shape for part in parts(state_float)]
    error = np.abs(y - y_float)
    most, mean = BOUNDS[precision]
    assert 0 < error.max() < most and error.mean() < mean
    # What is left once the weights' rounding is taken out: the activations' (int8 per
    # row at each step, bfloat16 per value), smaller again.
    y_twin, _ = dequantized(layer, quantized)(x)
    assert np.abs(y - y_twin).mean() < error.mean()


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    "case",
    [
        "plain",
        "stacked-bidirectional",
        "time-major",
        "reverse",
        "projected-stacked-bidirectional-peephole",
        "gru-stacked-bidirectional-time-major",
        "rnn-tanh",
    ],
)
def test_each_sequence_gets_the_same_bits_alone_in_a_batch_or_with_lengths(case, precision):
    layer = make(case)
    quantized = lstmcore.quantize(layer, precision)
    x = inputs(layer, batch=5)
    lengths = np.array([9, 2, 5, 9, 1])
    y, state = quantized(x, lengths=lengths)
    for b, length in enumerate(lengths):
        alone = x[b : b + 1, :length] if layer.batch_first else x[:length, b : b + 1]
        y_alone, state_alone = quantized(alone)
        got = y[b, :length] if layer.batch_first else y[:length, b]
        np.testing.assert_array_equal(got, y_alone[0] if layer.batch_first else y_alone[:, 0])
        for part, part_alone in zip(parts(state), parts(state_alone)):
            np.testing.assert_array_equal(part[:, b], part_alone[:, 0])


def parts(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_batch_of_thirteen_gives_each_sequence_its_bits_alone(precision):
    # 13 rows (AVX2's bfloat16 products take float32's tiles from 12) at odd depths (33
    # inputs, a projection of 7), then fewer as the sequences end; alone, a row at a time.
    layer = LSTM(33, 20, proj_size=7, seed=3)
    quantized = lstmcore.quantize(layer, precision)
    x = np.random.default_rng(8).standard_normal((13, 9, 33)).astype(np.float32)
    lengths = np.array([9, 9, 8, 9, 3, 9, 9, 7, 9, 9, 1, 9, 5])
    y, (h_n, c_n) = quantized(x, lengths=lengths)
    for b, length in enumerate(lengths):
        y_alone, (h_alone, c_alone) = quantized(x[b : b + 1, :length])
        np.testing.assert_array_equal(y[b, :length], y_alone[0])
        np.testing.assert_array_equal(h_n[:, b], h_alone[:, 0])
        np.testing.assert_array_equal(c_n[:, b], c_alone[:, 0])


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", ["plain", "gru", "rnn-tanh"])
def test_steps_with_the_state_carried_give_the_whole_sequence(case, precision):
    layer = make(case)
    quantized = lstmcore.quantize(layer, precision)
    x = inputs(layer)
    rng = np.random.default_rng(4)
    state_parts = [rng.standard_normal((1, BATCH, HIDDEN)).astype(np.float32) for _ in range(2 if case == "plain" else 1)]
    state = tuple(state_parts) if case == "plain" else state_parts[0]
    y, final = quantized(x, state)
    carried, outputs = state, []
    for t in range(STEPS):
        y_t, carried = quantized.step(x[:, t], carried)
        outputs.append(y_t)
    np.testing.assert_array_equal(np.stack(outputs, axis=1), y)
    for part, expected in zip(parts(carried), parts(final)):
        np.testing.assert_array_equal(part, expected)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("kind", [LSTM, GRU, RNN])
def test_the_split_over_threads_gives_the_same_bits_as_one_thread(kind, precision):
    layer = kind(INPUT, HIDDEN, seed=1)
    quantized = lstmcore.quantize(layer, precision)
    x = inputs(layer, batch=40, steps=6)
    previous = lstmcore._core.requested_threads()
    try:
        lstmcore.set_num_threads(1)
        y_one, _ = quantized(x, lengths=np.arange(40) % 6 + 1)
        lstmcore.set_num_threads(2)
        y_two, _ = quantized(x, lengths=np.arange(40) % 6 + 1)
    finally:
        lstmcore.set_num_threads(previous)
    np.testing.assert_array_equal(y_one, y_two)


# Layers whose batch-1 step is large enough to split over W's rows on two threads
# (reduced_sequence.hpp): (kind, input, hidden, gates, options).
PANEL_SPLIT = {
    "plain": (LSTM, 24, 256, 4, {}),
    "peephole-coupled-zoneout": (LSTM, 24, 256, 3, {"peephole": True, "coupled": True, "zoneout": 0.2}),
    "projected-stacked-bidirectional": (LSTM, 24, 256, 4, {"proj_size": 160, "num_layers": 2, "bidirectional": True}),
    "reverse-time-major": (LSTM, 24, 256, 4, {"reverse": True, "batch_first": False}),
    "gru": (GRU, 24, 256, 3, {}),
    "rnn-relu": (RNN, 24, 400, 1, {"nonlinearity": "relu"}),
}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", PANEL_SPLIT)
def test_the_split_over_weight_rows_at_a_small_batch_gives_the_same_bits_as_one_thread(case, precision):
    kind, input_size, hidden, gates, options = PANEL_SPLIT[case]
    layer = kind(input_size, hidden, seed=2, **options)
    quantized = lstmcore.quantize(layer, precision)
    rng = np.random.default_rng(5)
    previous = lstmcore._core.requested_threads()
    try:
        lstmcore.set_num_threads(2)
        plan = lstmcore._core.diagnostics.reduced_pass_plan
        depth = options.get("proj_size", hidden)
        assert plan(1, input_size, hidden, gates, precision, depth=depth) == (2, "panels")
        assert plan(3, input_size, hidden, gates, precision, depth=depth) == (2, "panels")
        for batch, lengths in [(1, None), (3, None), (3, np.array([2, 7, 5]))]:
            shape = (batch, 7, input_size) if layer.batch_first else (7, batch, input_size)
            x = rng.standard_normal(shape).astype(np.float32)
            two = quantized(x, lengths=lengths)
            lstmcore.set_num_threads(1)
            one = quantized(x, lengths=lengths)
            lstmcore.set_num_threads(2)
            np.testing.assert_array_equal(two[0], one[0])
            for part, part_one in zip(parts(two[1]), parts(one[1])):
                np.testing.assert_array_equal(part, part_one)
            assert np.abs(two[0] - layer(x, lengths=lengths)[0]).max() < BOUNDS[precision][0]
        if not (layer.bidirectional or layer.reverse):
            x_t = x[:, 0] if layer.batch_first else x[0]
            two_step = quantized.step(x_t)
            lstmcore.set_num_threads(1)
            np.testing.assert_array_equal(two_step[0], quantized.step(x_t)[0])
    finally:
        lstmcore.set_num_threads(previous)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("threads", [2, 3])
def test_the_split_over_weight_rows_refills_its_chunks_and_cuts_a_part_filled_panel(threads, precision):
    # H=250: the last panel of W is part filled; 300 steps at batch 1 refill the input
    # projection's chunk (256 rows); three threads on two cores split unevenly.
    layer = LSTM(12, 250, seed=4)
    quantized = lstmcore.quantize(layer, precision)
    rng = np.random.default_rng(6)
    previous = lstmcore._core.requested_threads()
    try:
        for batch, steps, lengths in [(1, 300, None), (3, 100, np.array([100, 37, 90]))]:
            x = rng.standard_normal((batch, steps, 12)).astype(np.float32)
            lstmcore.set_num_threads(threads)
            assert lstmcore._core.diagnostics.reduced_pass_plan(batch, 12, 250, 4, precision) == (threads, "panels")
            split = quantized(x, lengths=lengths)
            lstmcore.set_num_threads(1)
            one = quantized(x, lengths=lengths)
            np.testing.assert_array_equal(split[0], one[0])
            for part, part_one in zip(split[1], one[1]):
                np.testing.assert_array_equal(part, part_one)
    finally:
        lstmcore.set_num_threads(previous)


def test_a_small_int8_step_stays_on_one_thread():
    previous = lstmcore._core.requested_threads()
    try:
        lstmcore.set_num_threads(2)
        plan = lstmcore._core.diagnostics.reduced_pass_plan
        assert plan(1, 192, 192, 4, "int8") == (1, "panels")  # two barriers a step cost more
        assert plan(1, 192, 192, 4, "bfloat16") == (2, "panels")
        # A projected LSTM's recurrent product is (4H, P): costed by its depth P.
        assert plan(1, 24, 256, 4, "int8", depth=40) == (1, "panels")
        assert plan(1, 24, 256, 4, "int8", depth=256) == (2, "panels")
        assert plan(16, 64, 64, 4, "int8") == (2, "batch")
        # Lengths that leave a thread less than a tile of rows: one thread, as in float32's
        # batch split (the split over W's rows is for batches below a tile a thread).
        skewed = np.array([20, 2] + [1] * 18, dtype=np.int64)
        assert plan(20, 64, 64, 4, "int8", batch_sizes=skewed) == (1, "panels")
        with pytest.raises(ValueError, match="expected precision 'int8' or 'bfloat16', got 'int4'"):
            plan(1, 4, 4, 4, "int4")
    finally:
        lstmcore.set_num_threads(previous)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_ablation_clamps_a_gate_as_in_float32(precision):
    layer = make("plain")
    quantized = lstmcore.quantize(layer, precision)
    x = inputs(layer)
    y, _ = quantized(x, ablate={"forget": 0.0})
    y_float, _ = layer(x, ablate={"forget": 0.0})
    assert np.abs(y - y_float).max() < BOUNDS[precision][0]
    assert np.abs(y - quantized(x)[0]).max() > 0.05  # the clamp did something


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_weights_are_a_snapshot_and_read_only(precision):
    layer = make("plain")
    x = inputs(layer)
    quantized = lstmcore.quantize(layer, precision)
    before, _ = quantized(x)
    for value in layer.params.values():
        value *= 2.0  # in place
    layer.params["weight_hh_l0"] = np.zeros_like(layer.params["weight_hh_l0"])  # replaced
    np.testing.assert_array_equal(quantized(x)[0], before)
    for value, scales in quantized.reduced_params.values():
        assert not value.flags.writeable and (scales is None or not scales.flags.writeable)
        with pytest.raises(ValueError, match="cannot set WRITEABLE flag"):
            value.flags.writeable = True
    for value in quantized.params.values():
        assert not value.flags.writeable
    with pytest.raises(AttributeError, match="snapshot"):
        quantized.hidden_size = 3


def test_reduced_params_are_what_the_kernels_multiply():
    layer = make("plain")
    int8 = lstmcore.quantize(layer, "int8")
    values, scales = int8.reduced_params["weight_hh_l0"]
    assert values.dtype == np.int8 and scales.dtype == np.float32 and values.shape == (4 * HIDDEN, HIDDEN)
    np.testing.assert_array_equal(int8.params["weight_hh_l0"], restored(values, scales))
    np.testing.assert_array_equal(int8.params["bias_ih_l0"], layer.params["bias_ih_l0"])
    bits, none = lstmcore.quantize(layer, "bfloat16").reduced_params["weight_ih_l0"]
    assert bits.dtype == np.uint16 and none is None
    assert set(int8.reduced_params) == {"weight_ih_l0", "weight_hh_l0"}
    projected = lstmcore.quantize(make("projected"), "int8").reduced_params
    assert set(projected) == {"weight_ih_l0", "weight_hh_l0", "weight_hr_l0"}
    assert projected["weight_hr_l0"][0].shape == (7, HIDDEN)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_quantized_model_predicts_as_the_model_with_its_lstm_quantized(precision):
    model = Sequential([LSTM(INPUT, HIDDEN, seed=0), LastStep(), Dense(HIDDEN, 3, seed=1)])
    x = inputs(model.layers[0], batch=30)
    quantized = lstmcore.quantize(model, precision)
    assert isinstance(quantized, PreparedModel) and quantized.precision == precision
    assert repr(quantized).startswith(precision)
    assert isinstance(quantized.layers[0], ReducedLayer)
    expected = Sequential([dequantized(model.layers[0], quantized.layers[0]), LastStep(), model.layers[2]])
    got = quantized.predict(x, batch_size=7)
    assert np.abs(got - model.predict(x)).max() < BOUNDS[precision][0]
    assert np.abs(got - expected.predict(x)).max() < BOUNDS[precision][0] / 2
    np.testing.assert_array_equal(got, quantized.predict(x, batch_size=30))  # batching changes no bit


@pytest.mark.parametrize("precision", PRECISIONS)
def test_several_python_threads_may_call_one_quantized_model(precision):
    model = Sequential([LSTM(INPUT, HIDDEN, seed=0), LastStep(), Dense(HIDDEN, 3, seed=1)])
    quantized = lstmcore.quantize(model, precision)
    batches = [inputs(model.layers[0], seed=seed, batch=3) for seed in range(4)]
    expected = [quantized.predict(x) for x in batches]
    results: dict[int, list[np.ndarray]] = {}

    def run(index):
        results[index] = [quantized.predict(x) for x in batches for _ in range(5)]

    threads = [threading.Thread(target=run, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for outputs in results.values():
        for index, output in enumerate(outputs):
            np.testing.assert_array_equal(output, expected[index // 5])
    assert len(results) == 3


def test_what_has_no_reduced_kernel_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="reset_after=False"):
        lstmcore.quantize(GRU(3, 4, reset_after=False), "int8")
    with pytest.raises(ValueError, match="chosen activations"):
        lstmcore.quantize(GRU(3, 4, clip=1.0), "int8")
    with pytest.raises(ValueError, match="'tanh' or 'relu' without clip"):
        lstmcore.quantize(RNN(3, 4, clip=2.0), "bfloat16")
    with pytest.raises(ValueError, match="layer-normalised"):
        lstmcore.quantize(LSTM(3, 4, layer_norm=True), "int8")
    with pytest.raises(ValueError, match="expected a float32 layer, got float64"):
        lstmcore.quantize(LSTM(3, 4, dtype=np.float64), "int8")
    with pytest.raises(ValueError, match="reset_after=False"):
        lstmcore.quantize(Sequential([GRU(3, 4, reset_after=False), LastStep()]), "int8")

    class Mine(LSTM):
        pass

    with pytest.raises(ValueError, match="subclass Mine"):
        lstmcore.quantize(Mine(3, 4), "int8")
    with pytest.raises(ValueError, match="expected precision 'int8' or 'bfloat16', got 'int4'"):
        lstmcore.quantize(LSTM(3, 4), "int4")
    with pytest.raises(TypeError, match="not a prepared one"):
        lstmcore.quantize(lstmcore.prepare(LSTM(3, 4)), "int8")
    with pytest.raises(TypeError, match="got Dense"):
        lstmcore.quantize(Dense(3, 4), "int8")
    quantized = lstmcore.quantize(LSTM(3, 4), "int8")
    with pytest.raises(ValueError, match="keeps no gate traces"):
        quantized(np.zeros((1, 2, 3), np.float32), return_gates=True)
    with pytest.raises(ValueError, match="expected x"):
        quantized(np.zeros((1, 2, 5), np.float32))


def test_float64_input_is_converted_as_the_layer_converts_it():
    quantized = lstmcore.quantize(LSTM(3, 4, seed=0), "int8")
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    np.testing.assert_array_equal(quantized(x)[0], quantized(x.astype(np.float32))[0])
