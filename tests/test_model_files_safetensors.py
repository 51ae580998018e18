"""Model files in the safetensors format: bit-for-bit round trips, files the safetensors
library reads and writes, the path's suffix choosing the format, atomic writes, and every
malformed or hostile file a quick ModelFileError, checked before any layer is built."""

import json
import os
import struct
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmcore
from _model_files import SAFETENSORS_HOSTILE, measure_load, read_safetensors, safetensors_parts, write_safetensors
from _variants import LAYER_VARIANTS
from lstmcore import GRU, LSTM, RNN, Dense, Dropout, Embedding, LastStep, MeanPool, ModelFileError, Sequential
from lstmcore._util import atomic as _atomic
from lstmcore.cli.main import main
from lstmcore.nn.model_files import _format, _header, _load, _safetensors

safetensors_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402  (after the importorskip above)

HEADER = _format.HEADER


def _recurrent_model(cls, options):
    layer = cls(3, 5, num_layers=2, bidirectional=True, seed=0, **options)
    width = 2 * options.get("proj_size", 5)
    return Sequential([layer, LastStep(), Dense(width, 2, seed=1)])


MODELS = {
    **{
        f"{variant}-L2-bidir": (lambda c=cls, o=options: _recurrent_model(c, o))
        for variant, (cls, options) in LAYER_VARIANTS.items()
    },
    "rnn-relu": lambda: Sequential([RNN(3, 4, nonlinearity="relu", seed=0), MeanPool(), Dense(4, 1, seed=1)]),
    "stacked-lstm-dropout": lambda: Sequential(
        [LSTM(3, 5, num_layers=2, bidirectional=True, seed=0), Dropout(0.2, seed=1), Dense(10, 2, seed=2)]
    ),
    "embedding-gru-float64-dense": lambda: Sequential(
        [Embedding(7, 3, padding_idx=0, seed=0), GRU(3, 6, seed=1), MeanPool(), Dense(6, 3, dtype=np.float64, seed=2)],
        metadata={"task": "classify", "vocabulary": 'ab"\\é\U0001f600', "mean": [0.5, -1.25], "nested": {"n": None}},
    ),
    "lstm-float64-no-bias-projected-peephole-reverse": lambda: Sequential(
        [LSTM(3, 4, proj_size=2, peephole=True, bias=False, reverse=True, dtype=np.float64, seed=0), LastStep()]
    ),
    "lstm-layer-norm-float64": lambda: Sequential([LSTM(3, 4, num_layers=2, layer_norm=True, dtype=np.float64, seed=0)]),
    "dense": lambda: Sequential([Dense(2, 1, seed=0)]),
}


def _inputs(model):
    first = model.layers[0]
    if isinstance(first, Embedding):
        return np.array([[1, 2, 3, 0], [6, 5, 4, 3]])
    shape = (2, 4, first.input_size) if hasattr(first, "input_size") else (2, first.in_features)
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def model_of(name):
    model = MODELS[name]()
    for value in model.params.values():  # weights that differ from the seeded ones travel too
        value += np.linspace(-0.5, 0.5, value.size, dtype=value.dtype).reshape(value.shape)
    return model


def assert_same_model(loaded, model):
    assert loaded.get_config() == model.get_config() and loaded.metadata == model.metadata
    assert list(loaded.params) == list(model.params)
    for name, value in model.params.items():
        assert loaded.params[name].dtype == value.dtype and loaded.params[name].tobytes() == value.tobytes(), name
    x = _inputs(model)
    assert np.array_equal(loaded(x), model(x))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.safetensors"
    model_of("stacked-lstm-dropout").save(path)
    return path


# ----------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_is_bit_for_bit(tmp_path, name):
    model = model_of(name)
    model.save(tmp_path / "m.safetensors")
    assert_same_model(lstmcore.load(tmp_path / "m.safetensors"), model)


def test_the_library_reads_what_lstmcore_writes(tmp_path):
    model = model_of("embedding-gru-float64-dense")
    model.save(tmp_path / "m.safetensors")
    tensors = safetensors_numpy.load_file(tmp_path / "m.safetensors")
    assert sorted(tensors) == sorted(model.params)
    for name, value in model.params.items():
        assert tensors[name].dtype == value.dtype and np.array_equal(tensors[name], value), name
    with safe_open(str(tmp_path / "m.safetensors"), framework="np") as opened:
        metadata = opened.metadata()
    assert list(metadata) == [HEADER]  # the format's metadata holds only strings
    header = json.loads(metadata[HEADER])
    assert header == {"format": "lstmcore-model", "version": 1, **model.get_config()}


def test_lstmcore_reads_what_the_library_writes(tmp_path):
    model = model_of("lstm-float64-no-bias-projected-peephole-reverse")
    header = {"format": "lstmcore-model", "version": 1, "layers": model.get_config()["layers"], "metadata": {}}
    safetensors_numpy.save_file(
        dict(model.params), tmp_path / "by_library.safetensors", metadata={HEADER: json.dumps(header)}
    )
    assert_same_model(lstmcore.load(tmp_path / "by_library.safetensors"), model)


def test_loading_never_imports_the_library(tmp_path):
    model_of("dense").save(tmp_path / "m.safetensors")
    code = f"import sys, lstmcore; lstmcore.load({str(tmp_path / 'm.safetensors')!r}); print('safetensors' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"  # import lstmcore and load need no optional package


# ----------------------------------------------------------------------- the suffix


@pytest.mark.parametrize(
    "name, safetensors",
    [
        ("m.safetensors", True),
        ("M.SafeTensors", True),
        ("m.npz", False),
        ("m.bin", False),
        ("m", False),
        ("m.safetensors.npz", False),
    ],
)
def test_the_suffix_chooses_the_format_and_the_path_is_used_as_given(tmp_path, name, safetensors):
    model = model_of("dense")
    model.save(tmp_path / name)
    assert os.listdir(tmp_path) == [name]
    start = (tmp_path / name).read_bytes()[:9]
    assert (start[8:9] == b"{") is safetensors and start.startswith(b"PK\x03\x04") is not safetensors
    assert_same_model(lstmcore.load(tmp_path / name), model)


def test_load_tells_the_formats_apart_by_their_bytes_not_their_names(tmp_path):
    model = model_of("dense")
    model.save(tmp_path / "m.npz")
    model.save(tmp_path / "m.safetensors")
    os.rename(tmp_path / "m.npz", tmp_path / "npz.safetensors")
    os.rename(tmp_path / "m.safetensors", tmp_path / "safetensors.npz")
    assert_same_model(lstmcore.load(tmp_path / "npz.safetensors"), model)
    assert_same_model(lstmcore.load(tmp_path / "safetensors.npz"), model)


# ----------------------------------------------------------------------- saving


def test_a_failure_of_the_library_leaves_the_previous_file_and_no_temporary(saved, monkeypatch):
    before = saved.read_bytes()

    def failing(*args, **kwargs):
        raise RuntimeError("serialisation failed")

    monkeypatch.setattr(safetensors_numpy, "save", failing)
    with pytest.raises(RuntimeError, match="serialisation failed"):
        model_of("dense").save(saved)
    assert os.listdir(saved.parent) == [saved.name] and saved.read_bytes() == before


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_after_the_bytes_are_written_leaves_the_previous_file(saved, monkeypatch, error):
    before = saved.read_bytes()

    def failing_fsync(descriptor):
        assert os.fstat(descriptor).st_size > 0  # the new file's bytes were written
        raise error

    monkeypatch.setattr(_atomic.os, "fsync", failing_fsync)
    with pytest.raises(type(error)):
        model_of("dense").save(saved)
    assert os.listdir(saved.parent) == [saved.name] and saved.read_bytes() == before


def test_without_the_library_saving_says_how_to_install_it_and_writes_nothing(saved, monkeypatch):
    before = saved.read_bytes()
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install "lstmcore\[safetensors\]"'):
        model_of("dense").save(saved)
    assert os.listdir(saved.parent) == [saved.name] and saved.read_bytes() == before
    assert_same_model(lstmcore.load(saved), model_of("stacked-lstm-dropout"))  # loading needs no library
    model_of("dense").save(saved.parent / "still.npz")  # nor .npz


# ----------------------------------------------------------------------- the command line


def test_the_command_line_trains_into_predicts_from_and_inspects_a_safetensors_model(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log. " * 20, encoding="utf-8")
    model = tmp_path / "charlm.safetensors"
    train = ["train", "charlm", "--epochs", "1", "--hidden", "8", "--embedding", "4", "--steps", "16", "--quiet"]
    assert main([*train, "--text", str(text), "--out", str(model)]) == 0
    assert read_safetensors(model)[0]["__metadata__"][HEADER]  # written as safetensors
    assert main(["generate", str(model), "--length", "20", "--prime", "the ", "--seed", "1"]) == 0
    assert main(["inspect", str(model), str(text), "--max-samples", "20"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err


def test_the_command_line_refuses_a_safetensors_output_without_the_library_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    start = time.process_time()
    code = main(["train", "forecast", "--epochs", "50", "--quiet", "--out", str(tmp_path / "f.safetensors")])
    _, err = capsys.readouterr()
    assert code == 2 and 'pip install "lstmcore[safetensors]"' in err and "Traceback" not in err
    assert time.process_time() - start < 1.0 and os.listdir(tmp_path) == []  # nothing trained


# ----------------------------------------------------------------------- hostile files


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if load builds a layer: every claim must be checked before."""

    def no_building(*args, **kwargs):
        raise AssertionError("a layer was built before the file was checked")

    monkeypatch.setattr(_load, "_build", no_building)


def refused(path, message):
    """load(path) raises ModelFileError matching ``message`` in well under a second of
    CPU time (other processes on the cores do not count), with a short message."""
    start = time.process_time()
    with pytest.raises(ModelFileError, match=message) as caught:
        lstmcore.load(path)
    assert time.process_time() - start < 0.5
    assert str(caught.value).startswith(str(path)) and len(str(caught.value)) <= _format.MAX_MESSAGE
    return str(caught.value)


@pytest.mark.skipif(not os.path.exists("/proc"), reason="peak RSS in KiB: Linux")
@pytest.mark.parametrize("name", sorted(SAFETENSORS_HOSTILE))
def test_a_hostile_file_fails_fast_in_little_memory(tmp_path, name):
    path = tmp_path / f"{name}.safetensors"
    SAFETENSORS_HOSTILE[name](path)
    result = measure_load(path, timeout=120)
    assert result["outcome"] == "ModelFileError", result
    assert result["seconds"] < 1.0, result
    assert result["peak_growth_mb"] < 50 and result["traced_peak_mb"] < 25, result
    assert result["message_length"] <= _format.MAX_MESSAGE, result


def _parts(name="stacked-lstm-dropout"):
    return safetensors_parts(model_of(name))


def _edited(tmp_path, change, name="stacked-lstm-dropout"):
    """A saved model's file after ``change(entries, data)`` returned (entries, data)."""
    entries, data = _parts(name)
    entries, data = change(entries, data)
    write_safetensors(tmp_path / "bad.safetensors", entries, data)
    return tmp_path / "bad.safetensors"


def _entry(name, **values):
    def change(entries, data):
        entries[name].update(values)
        return entries, data

    return change


def _lstmcore_header(change):
    def edit(entries, data):
        header = json.loads(entries["__metadata__"][HEADER])
        change(header)
        entries["__metadata__"][HEADER] = json.dumps(header)
        return entries, data

    return edit


def _params(change):
    """A change that writes the model's file anew from its weights after ``change(params)``."""

    def rebuild(entries, data):
        model = model_of("stacked-lstm-dropout")
        params = {name: np.asarray(value) for name, value in model.params.items()}
        change(params)
        rebuilt, data = safetensors_parts(model, params=params)
        return {**rebuilt, "__metadata__": entries["__metadata__"]}, data

    return rebuild


@pytest.mark.parametrize(
    "change, message",
    [
        # the tensors against the layers' configurations
        (_params(lambda p: p.pop("0.weight_ih_l0")), r"missing \['0\.weight_ih_l0'\]"),
        (
            _params(lambda p: p.update({"2.weight": np.zeros((2, 9), np.float32)})),
            r"'2\.weight' as float32 \(2, 10\), got float32 \(2, 9\)",
        ),
        (_params(lambda p: p.update({"2.bias": np.zeros(2)})), r"'2\.bias' as float32 \(2,\), got float64 \(2,\)"),
        (_params(lambda p: p.update({"2.bias": np.zeros(8, np.uint8)})), r"'2\.bias' as float32 \(2,\), got uint8 \(8,\)"),
        (
            lambda e, d: ({**e, "3.weight": {"dtype": "F32", "shape": [0], "data_offsets": [len(d), len(d)]}}, d),
            r"unexpected \['3\.weight'\]",
        ),
        (lambda e, d: ({**e, HEADER: {"dtype": "U8", "shape": [0], "data_offsets": [len(d), len(d)]}}, d), "unexpected"),
        (_entry("2.bias", shape=[1, 2]), r"expected weight '2\.bias' as float32 \(2,\), got float32 \(1, 2\)"),
        (_entry("2.bias", dtype="F64", shape=[1]), r"'2\.bias' as float32 \(2,\), got float64 \(1,\)"),
        (_entry("2.bias", dtype="I32"), r"'2\.bias' as float32 \(2,\), got int32 \(2,\)"),
        (_entry("2.bias", dtype="F16"), r"declares float16 \(2,\), 4 bytes, but its data_offsets span 8"),
        (_entry("2.bias", dtype="BF16"), r"'2\.bias' has dtype 'BF16', not one NumPy holds"),
        (_entry("2.bias", dtype="F17"), r"dtype 'F17'"),
        (_entry("2.bias", dtype=4), r"expected its dtype as a string, got 4"),
        (_lstmcore_header(lambda h: h["layers"][2]["config"].update(in_features=11)), r"'2\.weight' as float32 \(2, 11\)"),
        (_lstmcore_header(lambda h: h["layers"][0]["config"].update(dtype="float64")), r"as float64 .*, got float32"),
        # the lstmcore header: the .npz's own checks
        (_lstmcore_header(lambda h: h.update(version=2)), "version 2 is not supported"),
        (_lstmcore_header(lambda h: h["layers"][0].update(type="Transformer")), "unknown type 'Transformer'"),
        # the metadata
        (lambda e, d: ({k: v for k, v in e.items() if k != "__metadata__"}, d), "without '__lstmcore_header__'"),
        (lambda e, d: ({**e, "__metadata__": {}}, d), "without '__lstmcore_header__'"),
        (lambda e, d: ({**e, "__metadata__": [1]}, d), "expected the safetensors __metadata__ as an object of strings"),
        (
            lambda e, d: ({**e, "__metadata__": {HEADER: {"format": 1}}}, d),
            r"__lstmcore_header__'\] as a string of JSON, got object",
        ),
        (lambda e, d: ({**e, "__metadata__": {**e["__metadata__"], "format": "pt"}}, d), r"unexpected keys \['format'\]"),
        (lambda e, d: ({**e, "__metadata__": {HEADER: "{not json"}}, d), "the header is not valid JSON"),
        (lambda e, d: ({**e, "__metadata__": {HEADER: "[" * 100 + "]" * 100}}, d), "the header nests 100 levels deep"),
        (lambda e, d: ({**e, "__metadata__": {HEADER: "\udc80"}}, d), "the header is not UTF-8"),
        # the entries' own form
        (_entry("2.bias", shape=[-2]), r"shape as a list of integers >= 0, got \[-2\]"),
        (_entry("2.bias", shape=[2.0]), r"shape as a list of integers >= 0"),
        (_entry("2.bias", shape=[True, True]), r"shape as a list of integers >= 0"),
        (_entry("2.bias", data_offsets=[3]), r"data_offsets \[begin, end\] with 0 <= begin <= end, got \[3\]"),
        (_entry("2.bias", data_offsets=[-8, 0]), r"0 <= begin <= end"),
        (_entry("2.bias", data_offsets=[8, 0]), r"0 <= begin <= end"),
        (_entry("2.bias", data_offsets=[0, 8.0]), r"0 <= begin <= end"),
        (_entry("2.bias", extra=1), r"tensor '2\.bias': expected \{\"dtype\""),
        (lambda e, d: ({**e, "2.bias": [1, 2]}, d), r"tensor '2\.bias': expected \{\"dtype\""),
        # the offsets: the tensors tile the data exactly
        (lambda e, d: (e, d[:-1]), r"claims bytes \d+ to \d+ of the \d+ bytes of data \(truncated\?\)"),
        (lambda e, d: (e, d + b"\0" * 8), "8 bytes after the last tensor's data"),
        (_entry("2.bias", data_offsets=[0, 8]), r"overlaps"),
        (
            lambda e, d: (_shifted(e, 4), b"\0" * 4 + d),
            r"leaves a gap after the header: it starts at byte 4 of the data, expected 0",
        ),
        (lambda e, d: (_shifted(e, 2**64), d), r"claims bytes"),
    ],
)
def test_a_malformed_file_is_a_quick_model_file_error_before_any_layer_is_built(tmp_path, nothing_built, change, message):
    refused(_edited(tmp_path, change), message)


def _shifted(entries, by):
    for name, entry in entries.items():
        if name != "__metadata__":
            entry["data_offsets"] = [offset + by for offset in entry["data_offsets"]]
    return entries


def test_a_gap_between_tensors_is_refused(tmp_path, nothing_built):
    entries, data = _parts()
    last = max((entry["data_offsets"][1], name) for name, entry in entries.items() if name != "__metadata__")[1]
    begin, end = entries[last]["data_offsets"]
    entries[last]["data_offsets"] = [begin + 4, end + 4]
    write_safetensors(tmp_path / "gap.safetensors", entries, data[:begin] + bytes(4) + data[begin:])
    refused(tmp_path / "gap.safetensors", rf"tensor '{last}' leaves a gap after tensor '.*': it starts at byte {begin + 4}")


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", r"the file ends within the 8-byte length of its safetensors header \(0 of its 8 bytes"),
        (b"\x05\0\0", r"the file ends within the 8-byte length"),
        (struct.pack("<Q", 2**64 - 1) + b"{}", r"a safetensors header of 18446744073709551615 bytes; at most 10485760"),
        (struct.pack("<Q", 10 * 2**20 + 1) + b"{}", r"a safetensors header of 10485761 bytes; at most 10485760"),
        (struct.pack("<Q", 3) + b"{}", r"a safetensors header of 3 bytes claimed, past the end of the 10-byte file"),
        (struct.pack("<Q", 3) + b" {}", r"expected the safetensors header to start with '\{', got b' \{\}'"),
        (struct.pack("<Q", 2) + b"{}", r"without '__lstmcore_header__' in its metadata"),
        (struct.pack("<Q", 3) + b"{\xff}", r"the safetensors header is not UTF-8"),
        (struct.pack("<Q", 3) + b"{[]", r"the safetensors header is not valid JSON"),
        (
            struct.pack("<Q", 22) + b'{"__metadata__": NaN }',
            r"the safetensors header is not valid JSON \('NaN is not JSON'\)",
        ),
        (struct.pack("<Q", 16) + b'{"a": 1, "a": 2}', r"the key 'a' appears twice"),
    ],
)
def test_a_malformed_safetensors_header_is_refused_before_it_is_parsed_further(tmp_path, raw, message):
    path = tmp_path / "bad.safetensors"  # named so: short files are read as what the name says
    path.write_bytes(raw)
    refused(path, message)


def test_a_header_over_the_limit_is_refused_before_it_is_read(saved, monkeypatch):
    monkeypatch.setattr(_safetensors, "MAX_SAFETENSORS_HEADER", 100)

    def no_reading(*args, **kwargs):
        raise AssertionError("the header must not be parsed")

    monkeypatch.setattr(_header.json, "loads", no_reading)
    refused(saved, r"a safetensors header of \d+ bytes; at most 100 are read")


def test_an_lstmcore_header_over_the_npz_limit_is_refused(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(_safetensors, "MAX_HEADER_BYTES", 100)
    refused(saved, r"a header of \d+ bytes; at most 100 are read")


def test_truncated_anywhere_is_a_clear_error(saved, tmp_path):
    data = saved.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for keep in sorted({*range(40), *range(0, len(data), max(1, len(data) // 50)), len(data) - 1}):
        cut.write_bytes(data[:keep])
        refused(cut, r"cut\.safetensors: ")


def test_a_file_shrinking_while_it_is_read_is_a_clear_error(saved, monkeypatch):
    read_into = _safetensors.SafetensorsFile.read_into

    def shrinking(self, name, array):
        os.truncate(saved, self._data_start)  # the tensors' bytes are gone once the checks passed
        return read_into(self, name, array)

    monkeypatch.setattr(_safetensors.SafetensorsFile, "read_into", shrinking)
    refused(saved, r"ends after 0 of its \d+ bytes \(the file shrank\?\)")


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.safetensors")
    refused(tmp_path / "pipe.safetensors", "not a regular file")


def test_random_bytes_are_a_clear_error(tmp_path):
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(struct.pack("<Q", 64) + b"{" + np.random.default_rng(0).bytes(4096))
    refused(noise, "the safetensors header")
    other = tmp_path / "noise.bin"
    other.write_bytes(np.random.default_rng(0).bytes(4096))
    refused(other, r"not an \.npz archive, nor a safetensors file")


# ----------------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    model = Sequential(
        [
            Embedding(6, 3, padding_idx=0, seed=0),
            LSTM(3, 4, num_layers=2, bidirectional=True, seed=1),
            LastStep(),
            Dense(8, 2, seed=2),
        ],
        metadata={"task": "fuzz", "classes": ["a", "b"]},
    )
    model.save(folder / "original.safetensors")
    return folder, (folder / "original.safetensors").read_bytes()


def _fuzzed_load(folder, raw):
    """lstmcore.load of ``raw``: the model, or None after a short ModelFileError, within
    half a second of CPU time. What it loads, the safetensors library reads as the same
    tensors: lstmcore accepts no file the format forbids."""
    path = folder / "fuzzed.safetensors"
    path.write_bytes(raw)
    start = time.process_time()
    try:
        model = lstmcore.load(path)
    except ModelFileError as error:
        assert len(str(error)) <= _format.MAX_MESSAGE  # noqa: PT017 (a helper of the fuzz tests)
        model = None
    assert time.process_time() - start < 0.5
    if model is not None:
        tensors = safetensors_numpy.load(raw)
        assert sorted(tensors) == sorted(model.params)
        for name, value in tensors.items():
            assert value.dtype == model.params[name].dtype and value.tobytes() == model.params[name].tobytes(), name
    return model


@FUZZ
@given(st.data())
def test_random_damage_to_the_files_bytes(original, data):
    folder, raw = original
    (length,) = struct.unpack("<Q", raw[:8])
    # most edits where they matter: the length and the JSON header
    position = st.integers(0, len(raw) - 1) | st.integers(0, 8 + length - 1)
    edits = data.draw(st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=6))
    cut = data.draw(st.none() | st.integers(0, len(raw) - 1))
    damaged = bytearray(raw)
    for index, value in edits:
        damaged[index] = value
    _fuzzed_load(folder, bytes(damaged[:cut] if cut is not None else damaged))


_JSON_BYTES = st.sampled_from(list(b'{}[]",:0123456789.-+eE tfnrulas\\FI')) | st.integers(0, 255)


@FUZZ
@given(st.data())
def test_random_edits_of_the_safetensors_header_text(original, data):
    folder, raw = original
    (length,) = struct.unpack("<Q", raw[:8])
    text = bytearray(raw[8 : 8 + length])
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(text) - 1))
        kind = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if kind == "set":
            text[index] = data.draw(_JSON_BYTES)
        elif kind == "insert":
            text[index:index] = bytes([data.draw(_JSON_BYTES)]) * data.draw(st.integers(1, 20))
        else:
            del text[index : index + data.draw(st.integers(1, 20))]
    _fuzzed_load(folder, struct.pack("<Q", len(text)) + bytes(text) + raw[8 + length :])


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_a_quantized_model_loads_back_from_safetensors_with_the_same_bits(tmp_path, precision):
    import test_quantize_files

    test_quantize_files.round_trip(tmp_path, precision, ".safetensors")
    with safe_open(tmp_path / "m.safetensors", "np") as handle:
        stored = handle.get_tensor("1.weight_hh_l0")
        assert stored.dtype == (np.int8 if precision == "int8" else np.uint16)
