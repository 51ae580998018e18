"""``lstmcore.onnx.export``: the written graph passes onnx.checker and ONNX Runtime's
outputs match lstmcore's, for every option ONNX's LSTM, GRU and RNN operators express and
the feed-forward layers around them.

Tolerance: the graph runs in float32 in ONNX Runtime and the layer in float32 in the
core: two float32 evaluations of the same equations, so differences are a few float32
roundings per step (observed below 3e-7); 1e-5, as the other float32 comparisons.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore
from _compare import assert_close

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import lstmcore.onnx  # noqa: E402  (after the importorskip above)

TOL = 1e-5

LAYERS = {
    "lstm": lambda: lstmcore.LSTM(4, 6, seed=1),
    "lstm-stacked-bidirectional-time-major": lambda: lstmcore.LSTM(4, 6, 2, bidirectional=True, batch_first=False, seed=2),
    "lstm-peephole": lambda: lstmcore.LSTM(4, 6, peephole=True, seed=3),
    "lstm-coupled": lambda: lstmcore.LSTM(4, 6, coupled=True, seed=4),
    "lstm-peephole-coupled-reverse": lambda: lstmcore.LSTM(4, 6, peephole=True, coupled=True, reverse=True, seed=5),
    "lstm-no-bias": lambda: lstmcore.LSTM(4, 6, bias=False, seed=6),
    "lstm-activations-clip": lambda: lstmcore.LSTM(
        4,
        6,
        gate_activation=("hard_sigmoid", 1 / 6, 0.5),
        activation="softsign",
        cell_activation="linear",
        clip=1.5,
        seed=7,
    ),
    "lstm-relu-stacked": lambda: lstmcore.LSTM(4, 6, 2, activation="relu", seed=8),
    "gru": lambda: lstmcore.GRU(4, 5, seed=9),
    "gru-reset-before-bidirectional": lambda: lstmcore.GRU(4, 5, bidirectional=True, reset_after=False, seed=10),
    "gru-activations-clip-reverse": lambda: lstmcore.GRU(
        4, 5, gate_activation="hard_sigmoid", activation="relu", clip=2.0, reverse=True, seed=11
    ),
    "gru-no-bias-stacked": lambda: lstmcore.GRU(4, 5, 3, bias=False, seed=12),
    "lstm-peephole-coupled-activations-clip": lambda: lstmcore.LSTM(
        4, 6, peephole=True, coupled=True, gate_activation="hard_sigmoid", activation="relu", clip=3.0, seed=16
    ),
    "rnn-softsign-clip-bidirectional": lambda: lstmcore.RNN(
        4, 7, nonlinearity="softsign", clip=1.0, bidirectional=True, seed=17
    ),
    "rnn-tanh": lambda: lstmcore.RNN(4, 7, seed=13),
    "rnn-relu-bidirectional-stacked": lambda: lstmcore.RNN(4, 7, 2, nonlinearity="relu", bidirectional=True, seed=14),
    "rnn-reverse-no-bias": lambda: lstmcore.RNN(4, 7, reverse=True, bias=False, seed=15),
}


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def layer_inputs(layer, batch, steps, rng):
    shape = (batch, steps) if layer.batch_first else (steps, batch)
    x = rng.normal(size=shape + (layer.input_size,)).astype(np.float32)
    count = layer.num_layers * layer.num_directions
    sizes = [layer.output_size, layer.hidden_size] if isinstance(layer, lstmcore.LSTM) else [layer.hidden_size]
    states = [rng.normal(size=(count, batch, size)).astype(np.float32) for size in sizes]
    return x, states


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("make", list(LAYERS.values()), ids=list(LAYERS))
def test_a_layer_runs_in_onnx_runtime_as_in_lstmcore(make, with_lengths, tmp_path):
    layer = make()
    path = tmp_path / "layer.onnx"
    lstmcore.onnx.export(layer, path, lengths=with_lengths, initial_state=True)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    run = session(path)
    rng = np.random.default_rng(0)
    # Two calls of other sizes: batch and time are dynamic axes.
    for batch, steps in ((3, 7), (1, 2)):
        x, states = layer_inputs(layer, batch, steps, rng)
        lengths = rng.integers(1, steps + 1, size=batch) if with_lengths else None
        feed = {"x": x, **dict(zip(["h0", "c0"], states))}
        if with_lengths:
            feed["lengths"] = lengths
        got = run.run(None, feed)
        y, final = layer(x, tuple(states) if len(states) == 2 else states[0], lengths=lengths)
        expected = [y, *(final if isinstance(final, tuple) else (final,))]
        assert [o.name for o in run.get_outputs()] == ["y", "h_n", "c_n"][: len(expected)]
        for name, g, e in zip(("y", "h_n", "c_n"), got, expected):
            assert_close(name, g, e, TOL, TOL)


def test_a_layer_without_initial_state_starts_from_zeros(tmp_path):
    layer = lstmcore.GRU(4, 5, 2, bidirectional=True, seed=1)
    lstmcore.onnx.export(layer, tmp_path / "gru.onnx")
    run = session(tmp_path / "gru.onnx")
    assert [i.name for i in run.get_inputs()] == ["x"]
    x = np.random.default_rng(1).normal(size=(2, 6, 4)).astype(np.float32)
    y, h_n = layer(x)
    got_y, got_h = run.run(None, {"x": x})
    assert_close("y", got_y, y, TOL, TOL)
    assert_close("h_n", got_h, h_n, TOL, TOL)


def test_a_float64_layer_is_written_in_float32(tmp_path):
    layer = lstmcore.LSTM(3, 4, dtype=np.float64, seed=2)
    lstmcore.onnx.export(layer, tmp_path / "lstm.onnx")
    model = onnx.load(str(tmp_path / "lstm.onnx"))
    kinds = {t.data_type for t in model.graph.initializer} - {onnx.TensorProto.INT64}  # shapes
    assert kinds == {onnx.TensorProto.FLOAT}
    x = np.random.default_rng(2).normal(size=(2, 5, 3))
    got = session(tmp_path / "lstm.onnx").run(None, {"x": x.astype(np.float32)})[0]
    assert_close("y", got, layer(x)[0], TOL, TOL)


MODELS = {
    "lstm-last-step-dense": lambda: lstmcore.Sequential(
        [lstmcore.LSTM(4, 6, seed=1), lstmcore.LastStep(), lstmcore.Dense(6, 3, seed=2)]
    ),
    "embedding-bigru-dropout-mean-dense": lambda: lstmcore.Sequential(
        [
            lstmcore.Embedding(10, 4, padding_idx=0, seed=0),
            lstmcore.GRU(4, 6, bidirectional=True, seed=1),
            lstmcore.Dropout(0.3),
            lstmcore.MeanPool(),
            lstmcore.Dense(12, 2, seed=2),
        ]
    ),
    "dense-stacked-rnn-dense-per-step": lambda: lstmcore.Sequential(
        [lstmcore.Dense(4, 5, seed=0), lstmcore.RNN(5, 6, 2, seed=1), lstmcore.Dense(6, 1, seed=2)]
    ),
    "bigru-last-step-bidirectional-dense-activations": lambda: lstmcore.Sequential(
        [
            lstmcore.GRU(4, 5, bidirectional=True, seed=5),
            lstmcore.LastStep(bidirectional=True),
            lstmcore.Dense(10, 6, activation=("hard_sigmoid", 0.3, 0.4), seed=6),
            lstmcore.Dense(6, 3, activation="softmax", seed=7),
        ]
    ),
    "reverse-rnn-last-step-reverse-dense-tanh": lambda: lstmcore.Sequential(
        [lstmcore.RNN(4, 5, reverse=True, seed=8), lstmcore.LastStep(reverse=True), lstmcore.Dense(5, 2, activation="tanh")]
    ),
    "lstm-per-step-dense-relu-softsign": lambda: lstmcore.Sequential(
        [lstmcore.LSTM(4, 5, seed=9), lstmcore.Dense(5, 4, activation="relu"), lstmcore.Dense(4, 2, activation="softsign")]
    ),
    "reverse-lstm-then-gru-last-step": lambda: lstmcore.Sequential(
        [lstmcore.LSTM(4, 6, reverse=True, seed=3), lstmcore.GRU(6, 5, seed=4), lstmcore.LastStep(), lstmcore.Dense(5, 2)]
    ),
}


def model_input(model, batch, steps, rng):
    if isinstance(model.layers[0], lstmcore.Embedding):
        return rng.integers(0, model.layers[0].num_embeddings, size=(batch, steps))
    return rng.normal(size=(batch, steps, 4)).astype(np.float32)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("make", list(MODELS.values()), ids=list(MODELS))
def test_a_model_runs_in_onnx_runtime_as_predict(make, with_lengths, tmp_path):
    model = make()
    path = tmp_path / "model.onnx"
    lstmcore.onnx.export(model, path, lengths=with_lengths)
    run = session(path)
    assert [i.name for i in run.get_inputs()] == ["x", "lengths"][: 1 + with_lengths]
    rng = np.random.default_rng(3)
    for batch, steps in ((4, 7), (2, 3)):
        x = model_input(model, batch, steps, rng)
        lengths = rng.integers(1, steps + 1, size=batch) if with_lengths else None
        feed = {"x": x} if lengths is None else {"x": x, "lengths": lengths}
        got = run.run(None, feed)[0]
        assert_close("y", got, model.predict(x, lengths=lengths), TOL, TOL)


def test_softmax_turns_a_classifier_s_logits_into_probabilities(tmp_path):
    model = MODELS["lstm-last-step-dense"]()
    lstmcore.onnx.export(model, tmp_path / "classifier.onnx", softmax=True)
    x = np.random.default_rng(4).normal(size=(5, 6, 4)).astype(np.float32)
    logits = model.predict(x)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    got = session(tmp_path / "classifier.onnx").run(None, {"x": x})[0]
    assert_close("probabilities", got, expected, TOL, TOL)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: lstmcore.LSTM(4, 6, proj_size=3), "proj_size=3"),
        (lambda: lstmcore.LSTM(4, 6, layer_norm=True), "layer_norm=True"),
        (lambda: lstmcore.LSTM(4, 6, zoneout=0.2), "zoneout=0.2"),
        (lambda: lstmcore.Sequential([lstmcore.LSTM(4, 6, layer_norm=True)]), "layer_norm=True"),
        (lambda: lstmcore.Sequential([lstmcore.LSTM(4, 6), lstmcore.LastStep(), lstmcore.GRU(6, 2)]), "needs sequences"),
        (lambda: lstmcore.Dense(3, 2), "expected an lstmcore Sequential or an LSTM, GRU or RNN layer, got Dense"),
        (lambda: lstmcore.Sequential([lstmcore.LastStep()]), "first layer"),
        (lambda: lstmcore.LSTMCell(3, 2), "got LSTMCell"),
        (lambda: lstmcore.Sequential([lstmcore.Masking(), lstmcore.LSTM(4, 2)]), "Masking"),
        (lambda: lstmcore.Sequential([lstmcore.Embedding(5, 4, mask_zero=True), lstmcore.GRU(4, 2)]), "mask_zero"),
        (lambda: lstmcore.Sequential([lstmcore.LSTM(4, 2), lstmcore.RepeatLast()]), "RepeatLast"),
    ],
)
def test_what_onnx_cannot_express_is_refused_naming_it_and_nothing_is_written(make, message, tmp_path):
    path = tmp_path / "refused.onnx"
    path.write_bytes(b"before")
    with pytest.raises((ValueError, TypeError), match=message):
        lstmcore.onnx.export(make(), path)
    assert path.read_bytes() == b"before"


@pytest.mark.parametrize(
    "options, message",
    [({"opset": 13}, "opset as an int >= 14"), ({"lengths": 1}, "lengths as a bool"), ({"softmax": True}, "Sequential")],
)
def test_bad_export_options_are_clear_errors(options, message, tmp_path):
    with pytest.raises((ValueError, TypeError), match=message):
        lstmcore.onnx.export(lstmcore.GRU(2, 3), tmp_path / "m.onnx", **options)


@pytest.mark.parametrize("opset", [14, 17, 20])
def test_every_supported_opset_runs(opset, tmp_path):
    model = lstmcore.Sequential([lstmcore.GRU(4, 5, seed=1), lstmcore.MeanPool(), lstmcore.Dense(5, 2, seed=2)])
    lstmcore.onnx.export(model, tmp_path / "m.onnx", opset=opset, lengths=True)
    written = onnx.load(str(tmp_path / "m.onnx"))
    assert written.opset_import[0].version == opset
    x = np.random.default_rng(5).normal(size=(3, 4, 4)).astype(np.float32)
    lengths = np.array([4, 1, 2])
    got = session(tmp_path / "m.onnx").run(None, {"x": x, "lengths": lengths})[0]
    assert_close("y", got, model.predict(x, lengths=lengths), TOL, TOL)
