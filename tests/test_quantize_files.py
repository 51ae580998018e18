"""Quantized models in model files and on the command line.

``quantize(model, p).save(path)`` writes the reduced weights as the kernels hold them;
``lstmcore.load`` gives back a quantized model with the same bits (.npz and
.safetensors); a damaged or hostile quantized file is refused with the reason;
``lstmcore quantize MODEL OUT --to p`` writes one that ``predict`` reads.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import lstmcore
from _model_files import entries, header_of, write_entries
from lstmcore import GRU, LSTM, RNN, Dense, Embedding, LastStep, ModelFileError, Sequential
from lstmcore.cli.main import main
from lstmcore.inference import PreparedModel, ReducedLayer

PRECISIONS = ["int8", "bfloat16"]


def model():
    return Sequential(
        [
            Embedding(20, 6, seed=0),
            LSTM(6, 8, num_layers=2, bidirectional=True, peephole=True, seed=1),
            LSTM(16, 10, proj_size=6, seed=5),
            GRU(6, 5, seed=2),
            RNN(5, 4, nonlinearity="relu", bias=False, seed=3),
            LastStep(),
            Dense(4, 3, seed=4),
        ],
        metadata={"task": "test", "classes": ["a", "b", "c"]},
    )


def ids(batch=5, steps=7):
    return np.random.default_rng(0).integers(0, 20, (batch, steps))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_quantized_model_loads_back_with_the_same_bits(tmp_path, precision):
    round_trip(tmp_path, precision, ".npz")


def round_trip(tmp_path, precision, suffix):
    """Saves a quantized model as ``suffix`` says, loads it, and checks every bit
    (tests/test_model_files_safetensors.py runs it on .safetensors files)."""
    quantized = lstmcore.quantize(model(), precision)
    path = tmp_path / f"m{suffix}"
    quantized.save(path)
    back = lstmcore.load(path)
    assert isinstance(back, PreparedModel) and back.precision == precision
    assert back.metadata == quantized.metadata
    np.testing.assert_array_equal(back.predict(ids()), quantized.predict(ids()))
    recurrent = [layer for layer in back.layers if isinstance(layer, ReducedLayer)]
    assert len(recurrent) == 4
    for loaded, saved in zip(recurrent, [layer for layer in quantized.layers if isinstance(layer, ReducedLayer)]):
        assert loaded.reduced_params.keys() == saved.reduced_params.keys()
        for name, (values, scales) in saved.reduced_params.items():
            np.testing.assert_array_equal(loaded.reduced_params[name][0], values)
            if scales is not None:
                np.testing.assert_array_equal(loaded.reduced_params[name][1], scales)


def test_the_file_holds_int8_values_with_row_scales_and_a_precision(tmp_path):
    lstmcore.quantize(model(), "int8").save(tmp_path / "m.npz")
    arrays = entries(tmp_path / "m.npz")
    assert header_of(arrays)["precision"] == "int8"
    assert arrays["1.weight_hh_l1_reverse"].dtype == np.int8
    assert arrays["1.weight_hh_l1_reverse.scale"].shape == (32,)
    assert arrays["1.bias_ih_l0"].dtype == np.float32 and arrays["1.weight_peephole_l0"].dtype == np.float32
    assert arrays["0.weight"].dtype == np.float32  # the embedding stays float32
    assert arrays["2.weight_hr_l0"].dtype == np.int8 and arrays["2.weight_hr_l0.scale"].shape == (6,)
    lstmcore.quantize(model(), "bfloat16").save(tmp_path / "b.npz")
    arrays = entries(tmp_path / "b.npz")
    assert arrays["2.weight_ih_l0"].dtype == np.uint16 and "2.weight_ih_l0.scale" not in arrays


def test_the_float_loader_says_where_a_quantized_file_is_read(tmp_path):
    lstmcore.quantize(model(), "int8").save(tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match=r"quantized to int8 \(lstmcore.quantize\): load it with lstmcore.load"):
        lstmcore.nn.load(tmp_path / "m.npz")


def _changed(tmp_path, change):
    lstmcore.quantize(model(), "int8").save(tmp_path / "m.npz")
    arrays = entries(tmp_path / "m.npz")
    header = header_of(arrays)
    change(arrays, header)
    write_entries(tmp_path / "bad.npz", arrays, header)
    return tmp_path / "bad.npz"


def with_value_at(array, index, value):
    changed = np.array(array)
    changed[index] = value
    return changed


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, h: h.update(precision="int4"), r"expected precision 'int8' or 'bfloat16', got 'int4'"),
        (lambda a, h: h.update(precision=8), r"expected precision 'int8' or 'bfloat16', got 8"),
        (lambda a, h: h.update(precision="bfloat16"), r"unexpected \['1.weight_hh_l0.scale'"),
        (lambda a, h: h.pop("precision"), r"unexpected \['1.weight_hh_l0.scale'"),
        (
            lambda a, h: [a.pop(name) for name in list(a) if name.endswith(".scale")] and h.update(precision="bfloat16"),
            r"expected weight '1.weight_ih_l0' as uint16 \(32, 6\), got int8",
        ),
        (lambda a, h: a.pop("3.weight_hh_l0.scale"), r"missing \['3.weight_hh_l0.scale'\]"),
        (
            lambda a, h: a.update({"3.weight_hh_l0.scale": np.float32([np.nan] * 15)}),
            r"row scales of '3.weight_hh_l0' are not all finite",
        ),
        (
            lambda a, h: a.update({"3.weight_hh_l0.scale": -np.ones(15, np.float32)}),
            r"row scales of '3.weight_hh_l0' are not all finite and >= 0",
        ),
        (
            lambda a, h: a.update({"3.weight_hh_l0": with_value_at(a["3.weight_hh_l0"], (0, 4), -128)}),
            r"layer 3 cannot be int8: expected int8 values in \[-127, 127\], got -128 at \(0, 4\)",
        ),
        (
            lambda a, h: h["layers"][3]["config"].update(dtype="float64"),
            r"layer 3 \(GRU\): the recurrent layers of a model quantized to int8 are float32, got .float64.",
        ),
        (
            lambda a, h: h["layers"][3]["config"].update(reset_after=False),
            r"layer 3 cannot be int8: .*reset_after=False",
        ),
    ],
)
def test_a_damaged_quantized_file_is_refused_saying_why(tmp_path, change, message):
    path = _changed(tmp_path, change)
    with pytest.raises(ModelFileError, match=message):
        lstmcore.load(path)


def test_a_precision_without_a_recurrent_layer_is_refused(tmp_path):
    Sequential([Dense(3, 2)]).save(tmp_path / "dense.npz")
    arrays = entries(tmp_path / "dense.npz")
    header = header_of(arrays)
    header["precision"] = "int8"
    write_entries(tmp_path / "bad.npz", arrays, header)
    with pytest.raises(ModelFileError, match="quantized to int8 without a recurrent layer"):
        lstmcore.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("bits", [0x7FC0, 0x7F80, 0xFFFF])  # NaN, inf, another NaN
def test_bfloat16_nan_or_inf_bits_load_and_give_nan_or_inf_not_a_crash(tmp_path, bits):
    quantized = lstmcore.quantize(Sequential([LSTM(3, 4, seed=0), LastStep()]), "bfloat16")
    quantized.save(tmp_path / "m.npz")
    arrays = entries(tmp_path / "m.npz")
    arrays["0.weight_hh_l0"] = np.full_like(arrays["0.weight_hh_l0"], bits)
    write_entries(tmp_path / "odd.npz", arrays)
    output = lstmcore.load(tmp_path / "odd.npz").predict(np.ones((2, 3, 3), np.float32))
    assert not np.isfinite(output).all()


def test_the_command_line_says_a_quantized_model_keeps_no_gate_traces(tmp_path, capsys):
    source = _trained_forecast(tmp_path)
    assert main(["quantize", str(source), str(tmp_path / "q.npz"), "--to", "int8"]) == 0
    csv = os.path.join(os.path.dirname(lstmcore.__file__), "data", "co2_monthly.csv")
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "q.npz"), csv]) == 2
    assert "keeps no gate traces: inspect the float32 model" in capsys.readouterr().err


def test_a_prepared_float_model_is_not_saved(tmp_path):
    with pytest.raises(TypeError, match="save the original model"):
        lstmcore.prepare(model()).save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def _trained_forecast(tmp_path):
    path = tmp_path / "f.npz"
    assert main(["train", "forecast", "--epochs", "2", "--hidden", "8", "--quiet", "--out", str(path)]) == 0
    return path


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_command_line_quantizes_a_model_file_that_predict_reads(tmp_path, capsys, precision):
    source = _trained_forecast(tmp_path)
    target = tmp_path / f"q-{precision}.npz"
    assert main(["quantize", str(source), str(target), "--to", precision]) == 0
    out = capsys.readouterr().out
    assert f"wrote {target}: 2 weight matrices in {precision}" in out and "the float32 file" in out
    quantized = lstmcore.load(target)
    assert quantized.precision == precision and quantized.metadata["task"] == "forecast"
    csv = os.path.join(os.path.dirname(lstmcore.__file__), "data", "co2_monthly.csv")
    assert main(["predict", str(source), "--csv", csv, "--column", "co2"]) == 0
    float_lines = capsys.readouterr().out.splitlines()
    assert main(["predict", str(target), "--csv", csv, "--column", "co2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(float_lines)
    assert abs(float(lines[-1].split()[-1]) - float(float_lines[-1].split()[-1])) < 0.05


def test_the_command_line_refuses_what_it_cannot_quantize(tmp_path, capsys):
    source = _trained_forecast(tmp_path)
    target = tmp_path / "q.npz"
    assert main(["quantize", str(source), str(target), "--to", "int8"]) == 0
    capsys.readouterr()
    assert main(["quantize", str(target), str(tmp_path / "qq.npz"), "--to", "int8"]) == 2
    assert "already quantized to int8: quantize the float32 model" in capsys.readouterr().err
    assert main(["convert", str(target), str(tmp_path / "q.onnx")]) == 2
    assert "quantized to int8, which has no ONNX form" in capsys.readouterr().err
    Sequential([LSTM(3, 4, layer_norm=True), LastStep()]).save(tmp_path / "ln.npz")
    assert main(["quantize", str(tmp_path / "ln.npz"), str(tmp_path / "x.npz"), "--to", "bfloat16"]) == 2
    assert "layer-normalised LSTM has no reduced-precision kernel" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
    assert main(["quantize", str(source), str(tmp_path / "y.npz"), "--to", "int4"]) == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err
