"""Model files: bit-for-bit round trips, atomic writes, and clear errors for bad files
(test_model_files_hostile.py: files made to cost; test_model_files_fuzz.py: random ones)."""

import os
import pickle

import numpy as np
import pytest

import lstmcore
from _model_files import entries, header_of, write_entries
from lstmcore import GRU, LSTM, Dense, Dropout, Embedding, MeanPool, ModelFileError, Sequential
from lstmcore._util import atomic as _atomic
from lstmcore.nn.model_files import _format, _save


def stacked_lstm_model():
    return Sequential([LSTM(3, 5, num_layers=2, bidirectional=True, seed=0), Dropout(0.2, seed=1), Dense(10, 2, seed=2)])


def gru_model():
    metadata = {"task": "classify", "vocabulary": "abcdef", "mean": [0.5, -1.25], "nested": {"ok": True, "n": None}}
    layers = [Embedding(7, 4, padding_idx=0, seed=0), GRU(4, 6, seed=1), MeanPool(), Dense(6, 3, dtype=np.float64, seed=2)]
    return Sequential(layers, metadata=metadata)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    stacked_lstm_model().save(path)
    return path


# ----------------------------------------------------------------------- round trips


def test_round_trip_of_a_stacked_bidirectional_lstm_is_bit_for_bit(tmp_path):
    model = stacked_lstm_model()
    model.params["2.bias"] = [0.25, -0.5]  # weights changed after construction travel too
    path = tmp_path / "lstm.npz"
    model.save(path)
    loaded = lstmcore.load(path)
    x = np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)
    assert np.array_equal(loaded(x), model(x))
    assert np.array_equal(loaded(x, lengths=[6, 2, 3, 1]), model(x, lengths=[6, 2, 3, 1]))
    assert loaded.get_config() == model.get_config()
    for name, value in model.params.items():
        assert loaded.params[name].dtype == value.dtype and np.array_equal(loaded.params[name], value)


def test_round_trip_of_a_gru_model_keeps_its_metadata(tmp_path):
    model = gru_model()
    path = tmp_path / "gru.npz"
    model.save(path)
    loaded = lstmcore.load(path)
    ids = np.array([[1, 2, 3, 0], [6, 5, 4, 3]])
    assert np.array_equal(loaded(ids, lengths=[3, 4]), model(ids, lengths=[3, 4]))
    assert loaded.metadata == model.metadata


def test_metadata_set_after_construction_is_saved_as_json(tmp_path):
    model = Sequential([Dense(2, 1, seed=0)])
    model.metadata = {"scale": np.float32(0.5), "window": np.int64(12), "shape": (2, 3)}
    model.save(tmp_path / "meta.npz")
    assert lstmcore.load(tmp_path / "meta.npz").metadata == {"scale": 0.5, "window": 12, "shape": [2, 3]}
    model.metadata = {"mean": np.zeros(2)}
    with pytest.raises(TypeError, match=r"metadata\['mean'\] is a ndarray"):
        model.save(tmp_path / "array.npz")
    assert sorted(os.listdir(tmp_path)) == ["meta.npz"]


def test_round_trip_of_lstm_variants(tmp_path):
    model = Sequential([LSTM(2, 4, peephole=True, forget_bias=1.0, seed=0), Dense(4, 1, seed=1)])
    model.save(tmp_path / "peephole.npz")
    x = np.random.default_rng(1).normal(size=(2, 3, 2))
    assert np.array_equal(lstmcore.load(tmp_path / "peephole.npz")(x), model(x))


def test_round_trip_of_masking_layers_reads_the_same_lengths(tmp_path):
    layers = [
        Embedding(6, 3, mask_zero=True, seed=0),
        lstmcore.LSTM(3, 4, seed=1),
        lstmcore.RepeatLast(),
        lstmcore.LSTM(4, 2, bidirectional=True, seed=2),
        lstmcore.LastStep(bidirectional=True),
        Dense(4, 3, activation="softmax", seed=3),
    ]
    model = Sequential(layers)
    model.save(tmp_path / "masked.npz")
    loaded = lstmcore.load(tmp_path / "masked.npz")
    ids = np.array([[1, 2, 0, 0], [5, 4, 3, 2]])
    assert np.array_equal(loaded(ids), model(ids)) and np.array_equal(model(ids), model(ids, lengths=[2, 4]))
    assert loaded.get_config() == model.get_config()
    model = Sequential([lstmcore.Masking(-1.0), GRU(2, 3, seed=0), lstmcore.LastStep()])
    model.save(tmp_path / "masking.npz")
    x = np.random.default_rng(0).normal(size=(2, 4, 2))
    x[1, 3:] = -1.0
    assert np.array_equal(lstmcore.load(tmp_path / "masking.npz")(x), model(x, lengths=[4, 3]))


def test_the_path_is_used_exactly_as_given(tmp_path):
    gru_model().save(tmp_path / "model.bin")
    assert os.listdir(tmp_path) == ["model.bin"]
    assert lstmcore.load(str(tmp_path / "model.bin")).metadata["task"] == "classify"


def test_save_refuses_layers_outside_the_registry(tmp_path):
    class Custom(Dense):
        pass

    with pytest.raises(ValueError, match="Custom"):
        Sequential([Custom(2, 2)]).save(tmp_path / "custom.npz")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------- atomic writes


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(saved, monkeypatch):
    before = saved.read_bytes()

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a model")
        raise OSError("disk full")

    monkeypatch.setattr(_save.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        gru_model().save(saved)
    assert os.listdir(saved.parent) == [saved.name]
    assert saved.read_bytes() == before


def test_an_interrupted_write_leaves_no_temporary(saved, monkeypatch):
    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(_atomic.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gru_model().save(saved)
    assert os.listdir(saved.parent) == [saved.name]


# ----------------------------------------------------------------------- bad files


def test_a_truncated_file_is_a_clear_error(saved, tmp_path):
    cut = tmp_path / "cut.npz"
    data = saved.read_bytes()
    for keep in (len(data) // 2, len(data) - 10, 10):
        cut.write_bytes(data[:keep])
        with pytest.raises(ModelFileError, match=r"cut\.npz"):
            lstmcore.load(cut)


def test_random_bytes_and_other_formats_are_clear_errors(tmp_path):
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFileError, match=r"not an \.npz archive"):
        lstmcore.load(noise)
    array = tmp_path / "array.npy"
    np.save(array, np.zeros(3))
    with pytest.raises(ModelFileError, match=r"\.npy array"):
        lstmcore.load(array)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"empty\.npz: not an lstmcore model file"):
        lstmcore.load(empty)


def test_a_foreign_npz_is_a_clear_error(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.arange(4.0))
    with pytest.raises(ModelFileError, match="without an lstmcore header"):
        lstmcore.load(foreign)


def test_an_object_array_is_refused_without_unpickling(saved, tmp_path, monkeypatch):
    arrays = entries(saved)
    arrays["2.bias"] = np.array([{"evil": 1}, None], dtype=object)
    bad = tmp_path / "object.npz"
    write_entries(bad, arrays)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("load must never unpickle")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    with pytest.raises(ModelFileError, match=r"'2\.bias'"):
        lstmcore.load(bad)


def test_saving_writes_no_pickle(saved):
    # allow_pickle=False refuses any pickled entry, so reading them all proves there is none
    for name, array in entries(saved).items():
        assert not array.dtype.hasobject, name


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda h: h.update(version=2), "version 2 is not supported"),
        (lambda h: h.update(format="something-else"), "expected format 'lstmcore-model'"),
        (lambda h: h["layers"][0].update(type="Transformer"), "unknown type 'Transformer'"),
        (lambda h: h["layers"][2]["config"].update(in_features=-3), r"layer 2 \(Dense\) has a bad config"),
        (lambda h: h["layers"][2]["config"].update(surprise=1), r"layer 2 \(Dense\) has a bad config"),
        (lambda h: h.update(metadata=[1, 2]), "metadata"),
    ],
)
def test_a_bad_header_is_a_clear_error(saved, tmp_path, change, message):
    arrays = entries(saved)
    header = header_of(arrays)
    change(header)
    bad = tmp_path / "bad.npz"
    write_entries(bad, arrays, header)
    with pytest.raises(ModelFileError, match=message):
        lstmcore.load(bad)


def test_a_header_that_is_not_json_is_a_clear_error(saved, tmp_path):
    arrays = entries(saved)
    arrays[_format.HEADER] = np.frombuffer(b"{not json", np.uint8)
    write_entries(tmp_path / "bad.npz", arrays)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        lstmcore.load(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("2.weight"), r"missing \['2.weight'\]"),
        (lambda a: a.update({"3.weight": np.zeros(2)}), r"unexpected \['3.weight'\]"),
        (lambda a: a.update({"2.weight": np.zeros((2, 9), np.float32)}), r"'2.weight'.*\(2, 10\).*\(2, 9\)"),
        (lambda a: a.update({"2.bias": np.zeros(2, np.float64)}), r"'2.bias' as float32.*float64"),
    ],
)
def test_weights_that_do_not_fit_the_layers_are_clear_errors(saved, tmp_path, change, message):
    arrays = entries(saved)
    change(arrays)
    write_entries(tmp_path / "bad.npz", arrays)
    with pytest.raises(ModelFileError, match=message):
        lstmcore.load(tmp_path / "bad.npz")
