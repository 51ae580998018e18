"""``lstmcore convert IN OUT``: formats chosen by suffix, the mapped layers printed, the
converted file gives the same outputs; bad paths and formats exit 2 with one line."""

from __future__ import annotations

import os

import numpy as np
import pytest

import lstmcore
from _compare import assert_close
from lstmcore.cli.main import main


def _model():
    return lstmcore.Sequential(
        [lstmcore.GRU(3, 5, seed=0), lstmcore.LastStep(), lstmcore.Dense(5, 2, activation="tanh", seed=1)]
    )


def _x():
    return np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)


def test_an_npz_model_converts_to_safetensors_with_the_same_weights(tmp_path, capsys):
    pytest.importorskip("safetensors")
    model = _model()
    model.save(tmp_path / "m.npz")
    assert main(["convert", str(tmp_path / "m.npz"), str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "3 layer(s)" in out and "GRU(3, 5" in out and "wrote" in out
    back = lstmcore.load(tmp_path / "m.safetensors")
    assert set(back.params) == set(model.params)
    for name, value in model.params.items():
        assert np.array_equal(back.params[name], value), name
    assert np.array_equal(back.predict(_x()), model.predict(_x()))


def test_an_npz_model_converts_to_onnx_that_onnx_runtime_runs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = _model()
    model.save(tmp_path / "m.npz")
    target = tmp_path / "m.onnx"
    assert main(["convert", str(tmp_path / "m.npz"), str(target), "--lengths", "--opset", "18"]) == 0
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    lengths = np.array([6, 2, 3, 1])
    got = session.run(None, {"x": _x(), "lengths": lengths})[0]
    assert_close("y", got, model.predict(_x(), lengths=lengths), 1e-5, 1e-5)


def test_an_onnx_graph_converts_to_npz_and_back(tmp_path):
    pytest.importorskip("onnx")
    model = _model()
    model.save(tmp_path / "m.npz")
    assert main(["convert", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    assert main(["convert", str(tmp_path / "m.onnx"), str(tmp_path / "back.npz")]) == 0
    back = lstmcore.load(tmp_path / "back.npz")
    for name, value in model.params.items():
        assert np.array_equal(back.params[name], value), name
    assert np.array_equal(back.predict(_x()), model.predict(_x()))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras on the torch backend, about NumPy 2
def test_a_keras_file_converts_to_npz(tmp_path):
    pytest.importorskip("h5py")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    net = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    net.save(tmp_path / "k.keras")
    assert main(["convert", str(tmp_path / "k.keras"), str(tmp_path / "k.npz")]) == 0
    x = _x()
    assert_close("y", lstmcore.load(tmp_path / "k.npz").predict(x), np.asarray(net.predict(x, verbose=0)), 1e-5, 1e-5)


@pytest.mark.parametrize(
    "source, target, message",
    [
        ("m.npz", "m.txt", "expected a name ending .npz, .safetensors, .onnx"),
        ("m.onnx", "m.npz", "is not an ONNX model"),
        ("m.h5", "m.npz", "cannot read"),
        ("missing.npz", "m.onnx", "no such model file"),
        ("missing.keras", "m.npz", "no such model file"),
    ],
)
def test_bad_conversions_exit_2_with_one_line_saying_why(source, target, message, tmp_path, capsys):
    _model().save(tmp_path / "m.npz")
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "m.h5").write_bytes(b"")
    assert main(["convert", str(tmp_path / source), str(tmp_path / target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
