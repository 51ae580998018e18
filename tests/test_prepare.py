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
from lstmcore import GRU, LSTM, RNN, Dense, Embedding, LastStep, MeanPool, Sequential
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


def test_an_array_of_the_layer_s_dtype_takes_the_direct_route_and_others_the_layer_s_pass(monkeypatch):
    layer = LSTM(INPUT, HIDDEN, num_layers=2, seed=0)
    prepared = lstmcore.prepare(layer)
    x, state = inputs(layer, np.float32)
    expected = layer(x, state)
    passes = []
    general = type(layer)._forward

    def counted(self, *args, **kwargs):
        passes.append(1)
        return general(self, *args, **kwargs)

    monkeypatch.setattr(type(layer), "_forward", counted)
    assert_identical(prepared(x, state), expected)
    assert_identical(prepared.step(x[:, 0]), layer.step(x[:, 0]))
    assert passes == [1]  # the plain step's only
    prepared(x.tolist(), state)
    assert passes == [1, 1]


@pytest.mark.parametrize("contiguous", [True, False])  # the narrow path's step, and the general one
@pytest.mark.parametrize("case", ["lstm", "lstm-projected", "gru", "rnn-relu", "lstm-time-major"])
def test_prepared_step_gives_the_layer_step_bit_for_bit(case, contiguous):
    layer = make(case, np.float32)
    prepared = lstmcore.prepare(layer)
    x, _ = inputs(layer, np.float32)
    state = state_expected = None
    for t in range(STEPS):
        x_t = x[:, t] if layer.batch_first else x[t]
        x_t = np.ascontiguousarray(x_t) if contiguous else np.asfortranarray(x_t)
        y_t, state = prepared.step(x_t, state)
        y_expected, state_expected = layer.step(x_t, state_expected)
        assert_identical((y_t, state), (y_expected, state_expected))


# Sizes at which a pass runs on two threads, split over units (B=1; H=160 is not a whole
# number of panels on either thread) or over the batch (B=40): a prepared layer's weights
# are packed once, and each thread's panels are a view of them.
@pytest.mark.parametrize("batch", [1, 40])
@pytest.mark.parametrize(
    "kind, options",
    [(LSTM, {}), (LSTM, {"peephole": True}), (LSTM, {"proj_size": 96}), (GRU, {}), (RNN, {})],
    ids=["lstm", "lstm-peephole", "lstm-projected", "gru", "rnn"],
)
def test_prepared_packed_weights_give_the_plain_call_bit_for_bit_on_two_threads(two_threads, kind, options, batch):
    for dtype in DTYPES:
        layer = kind(24, 160, dtype=dtype, seed=1, **options)
        prepared = lstmcore.prepare(layer)
        x = np.random.default_rng(2).standard_normal((batch, 9, 24)).astype(dtype)
        assert_identical(prepared(x), layer(x))
        assert_identical(prepared(x[:, :2]), layer(x[:, :2]))  # a pass of two rows reads W in place


class Tagged(np.ndarray):
    """An ndarray subclass: the narrow path takes NumPy's own arrays only."""


def state_forms(state, layer):
    """The state in forms the core does not read as they are, which the layer converts."""
    parts = states(state)
    wrap = (lambda forms: tuple(forms)) if isinstance(layer, LSTM) else (lambda forms: forms[0])
    other = np.float32 if parts[0].dtype == np.float64 else np.float64
    yield "another dtype", wrap([part.astype(other) for part in parts])
    yield "strided", wrap([np.swapaxes(np.swapaxes(part, 0, 1).copy(), 0, 1) for part in parts])
    yield "subclass", wrap([part.view(Tagged) for part in parts])
    yield (
        "unaligned",
        wrap([np.frombuffer(b"\0" + part.tobytes(), part.dtype, offset=1).reshape(part.shape) for part in parts]),
    )
    yield "nested lists", wrap([part.tolist() for part in parts])
    if isinstance(layer, LSTM):
        yield "a list of (h, c)", list(parts)


def call_or_error(function, *args):
    try:
        return function(*args)
    except (ValueError, TypeError) as error:
        return type(error), str(error)


@pytest.mark.parametrize("case", ["lstm", "lstm-projected", "gru-stacked-bidirectional-time-major", "rnn-relu"])
def test_a_state_in_any_form_the_layer_takes_gives_the_layer_s_result_or_error(case):
    layer = make(case, np.float32)
    prepared = lstmcore.prepare(layer)
    x, state = inputs(layer, np.float32)
    x_t = np.ascontiguousarray(x[:, 0] if layer.batch_first else x[0])
    for form, given in state_forms(state, layer):
        got, expected = call_or_error(prepared, x, given), call_or_error(layer, x, given)
        if isinstance(expected[0], type):
            assert got == expected, form
        else:
            assert_identical(got, expected)
        if not layer.bidirectional:
            got, expected = call_or_error(prepared.step, x_t, given), call_or_error(layer.step, x_t, given)
            if isinstance(expected[0], type):
                assert got == expected, form
            else:
                assert_identical(got, expected)
    # A GRU's state is one array: a tuple holding it is refused, as the layer refuses it.
    if isinstance(layer, GRU):
        expected = call_or_error(layer, x, (state,))
        assert isinstance(expected[0], type) and call_or_error(prepared, x, (state,)) == expected


def test_a_narrow_stack_refuses_passes_that_do_not_fit_together():
    layer = LSTM(INPUT, HIDDEN, num_layers=2, seed=0)
    calls = lstmcore.prepare(layer)._calls
    passes = [lstmcore._core.lstm_narrow_pass(call.weights, call.pass_options, *call.args) for call in calls]
    stack = lstmcore._core.NarrowStack
    for wrong in (
        (passes, 2, 1, True, HIDDEN + 1, HIDDEN, np.dtype(np.float32)),  # another width
        (passes, 2, 1, True, HIDDEN, 0, np.dtype(np.float32)),  # no cell state
        (passes, 2, 1, True, HIDDEN, HIDDEN, np.dtype(np.float64)),  # another dtype
        (passes[::-1], 2, 1, True, HIDDEN, HIDDEN, np.dtype(np.float32)),  # the layers swapped
        (passes, 1, 2, True, HIDDEN, HIDDEN, np.dtype(np.float32)),  # as two directions
        (passes[:1], 2, 1, True, HIDDEN, HIDDEN, np.dtype(np.float32)),  # one pass short
    ):
        with pytest.raises(ValueError, match="expected"):
            stack(*wrong)


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
    for backwards in (GRU(INPUT, HIDDEN, bidirectional=True), LSTM(INPUT, HIDDEN, reverse=True)):
        for x_t in (x[:, 0], np.ascontiguousarray(x[:, 0])):  # the direct route's input too
            with pytest.raises(ValueError, match="step needs a layer that runs forward in time"):
                lstmcore.prepare(backwards).step(x_t)
    with pytest.raises(ValueError, match=r"expected state h of shape \(1, 3, 6\), got \(1, 2, 6\)"):
        prepared.step(np.ascontiguousarray(x[:, 0]), (np.zeros((1, 2, HIDDEN), np.float32),) * 2)


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
    # Its own parameters are read-only, NumPy refuses to make them writeable, and handing
    # them out does not open a way in.
    with pytest.raises(ValueError, match="read-only"):
        prepared.params[name][0, 0] = 5.0
    with pytest.raises(ValueError, match="cannot set WRITEABLE flag"):
        prepared.params[name].flags.writeable = True
    prepared.params[name] = np.zeros_like(layer.params[name])
    with pytest.raises(AttributeError, match="a prepared LSTM is a snapshot: set 'batch_first' on the original"):
        prepared.batch_first = False
    layer.batch_first = False  # rebinding the original's attributes does not reach it either
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

    class Scaled(Sequential):
        def __call__(self, x, lengths=None):
            return 10 * super().__call__(x, lengths)

    class Louder(GRU):
        pass

    with pytest.raises(TypeError, match=r"lstmcore.s own Sequential, got Scaled \(what a subclass overrides would not run"):
        lstmcore.prepare(Scaled([GRU(INPUT, HIDDEN)]))
    with pytest.raises(TypeError, match="lstmcore's own LSTM, GRU and RNN, got the subclass Louder"):
        lstmcore.prepare(Louder(INPUT, HIDDEN))


def model(dtype=np.float32):
    return Sequential(
        [
            LSTM(INPUT, HIDDEN, seed=1, dtype=dtype),
            GRU(HIDDEN, 4, seed=2, dtype=dtype),
            RNN(4, 4, bias=False, seed=4, dtype=dtype),
            LastStep(),
            Dense(4, 2, seed=3, dtype=dtype),
        ],
        metadata={"classes": ["a", "b"]},
    )


def token_model():
    return Sequential(
        [Embedding(20, INPUT, mask_zero=True, seed=0), GRU(INPUT, HIDDEN, seed=1), MeanPool(), Dense(HIDDEN, 2)]
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
    assert prepared.output_is_sequence is False and len(prepared.layers) == 5
    assert [type(layer) for layer in prepared.layers[:3]] == [PreparedLayer] * 3
    assert prepared.metadata == original.metadata and prepared.params.keys() == original.params.keys()
    for name in ("fit", "forward", "backward", "grads"):
        with pytest.raises(AttributeError, match=f"a prepared model has no '{name}'"):
            getattr(prepared, name)
    with pytest.raises(TypeError, match="a prepared float model is not saved: save the original model"):
        prepared.save("never-written.npz")
    for value in prepared.params.values():
        with pytest.raises(ValueError, match="cannot set WRITEABLE flag"):
            value.flags.writeable = True
    with pytest.raises(AttributeError, match="a prepared model is a snapshot"):
        prepared.metadata = {}


def test_a_prepared_token_model_is_a_snapshot_of_its_embedding_too():
    original = token_model()
    prepared = lstmcore.prepare(original)
    ids = np.random.default_rng(0).integers(1, 20, (6, STEPS))
    ids[1, 4:] = 0  # padding, read off the ids by mask_zero
    expected = original.predict(ids, batch_size=4)
    assert np.array_equal(prepared.predict(ids, batch_size=4), expected)
    original.params["0.weight"][...] = 0.0  # in place
    original.layers[0].mask_zero = False
    assert np.array_equal(prepared.predict(ids, batch_size=4), expected)
    assert not np.array_equal(original.predict(ids, batch_size=4), expected)


@pytest.mark.parametrize("what", ["layer", "model"])
def test_several_threads_may_call_one_prepared_layer_or_model_at_once(what):
    original = LSTM(16, 32, num_layers=2, seed=0) if what == "layer" else token_model()
    prepared = lstmcore.prepare(original)
    rng = np.random.default_rng(1)
    if what == "layer":
        batches = [rng.standard_normal((index + 1, 30, 16)).astype(np.float32) for index in range(4)]
    else:
        batches = [rng.integers(1, 20, (index + 1, 30)) for index in range(4)]
    expected = [original(x) for x in batches]
    failures = []

    def same(got, wanted):
        if what == "model":
            return np.array_equal(got, wanted)
        return np.array_equal(got[0], wanted[0]) and all(np.array_equal(a, b) for a, b in zip(got[1], wanted[1]))

    def work(index):
        for _ in range(25):
            if not same(prepared(batches[index]), expected[index]):
                failures.append(index)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_prepares_the_recurrent_layers_for_its_batches_with_the_per_batch_calls_results(dtype, monkeypatch):
    model = Sequential(
        [
            LSTM(INPUT, HIDDEN, dtype=dtype, seed=0),
            GRU(HIDDEN, HIDDEN, num_layers=2, bidirectional=True, dtype=dtype, seed=1),
            LSTM(2 * HIDDEN, HIDDEN, layer_norm=True, dtype=dtype, seed=2),
            RNN(HIDDEN, HIDDEN, nonlinearity="relu", dtype=dtype, seed=3),
            MeanPool(),
            Dense(HIDDEN, 3, dtype=dtype, seed=4),
        ]
    )
    x = np.random.default_rng(0).standard_normal((11, STEPS, INPUT)).astype(dtype)
    per_batch = np.concatenate([model(x[part]) for part in (slice(0, 4), slice(4, 11))])
    passes = []
    general = lstmcore.rnn._recurrent._GatedRecurrent._forward

    def counted(self, *args, **kwargs):
        passes.append(type(self).__name__)
        return general(self, *args, **kwargs)

    monkeypatch.setattr(lstmcore.rnn._recurrent._GatedRecurrent, "_forward", counted)
    assert np.array_equal(model.predict(x, batch_size=4), per_batch)
    assert passes == []  # every layer on the narrow path, the layer-normalised LSTM's calls from Python
    # Lengths take the layers' own pass, on the same weights.
    lengths = np.array([STEPS, 2, 5, 1, STEPS, 3, 4, 6, 2, STEPS, 1])
    unidirectional = Sequential([LSTM(INPUT, HIDDEN, dtype=dtype, seed=5), LastStep(), Dense(HIDDEN, 2, seed=6)])
    expected = np.concatenate([unidirectional(x[p], lengths[p]) for p in (slice(0, 4), slice(4, 11))])
    assert np.array_equal(unidirectional.predict(x, batch_size=4, lengths=lengths), expected)
    # Nothing is kept between predicts: a change to the parameters in place reaches the next.
    layer = model.layers[0]
    layer.params["weight_hh_l0"] *= 0.5
    changed = np.concatenate([model(x[part]) for part in (slice(0, 4), slice(4, 11))])
    assert not np.array_equal(changed, per_batch)
    assert np.array_equal(model.predict(x, batch_size=4), changed)


def test_a_narrow_pass_keeps_its_clamps_whatever_becomes_of_the_list_it_was_given():
    core = lstmcore._core
    hidden, inputs = 64, 8
    rng = np.random.default_rng(0)

    def floats(*shape):
        return np.ascontiguousarray(rng.standard_normal(shape).astype(np.float32))

    weights = core.LstmWeights(floats(4 * hidden, inputs), floats(4 * hidden, hidden), floats(4 * hidden), floats(4 * hidden))

    def stack(clamps):
        narrow = core.lstm_narrow_pass(weights, core.PassOptions(), core.LstmOptions(cell="plain", clamps=clamps), False)
        return core.NarrowStack([narrow], 1, 1, False, hidden, hidden, np.dtype(np.float32))

    x = floats(3, 2, inputs)
    expected = stack([np.zeros(hidden, np.float32), None, None, None])(x)[0]
    clamps = [np.zeros(hidden, np.float32), None, None, None]
    kept = stack(clamps)
    clamps[0] = None  # the list's array freed, were the pass not holding it
    reused = [np.ones(hidden, np.float32) for _ in range(50)]  # buffers NumPy may hand out again
    assert np.array_equal(kept(x)[0], expected) and len(reused) == 50


def test_predict_leaves_a_subclass_of_the_recurrent_adapter_its_own_layer():
    from lstmcore.nn._layers import RecurrentAdapter

    class LastState(RecurrentAdapter):
        def infer(self, x, *, lengths=None):
            _, state, _ = self.layer.forward(x)  # what a prepared layer does not have
            return state[0][-1]

    model = Sequential([LastState(LSTM(4, 8, seed=0)), Dense(8, 2, seed=1)])
    x = np.random.default_rng(0).standard_normal((10, 3, 4)).astype(np.float32)
    assert np.array_equal(model.predict(x, batch_size=5), model.predict(x, batch_size=10))
