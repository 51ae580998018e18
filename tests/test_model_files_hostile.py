"""Model files made to cost or to confuse: each is a ModelFileError, fast and in little
memory, whatever the file claims; nothing else is ever raised."""

import json
import os
import time
import zipfile
import zlib

import numpy as np
import pytest

import lstmcore
from _model_files import (
    HEADER_MEMBER,
    HOSTILE,
    deflated,
    deflated_zeros_after,
    entries,
    header_of,
    measure_load,
    members,
    npy_bytes,
    write_entries,
    write_members,
    zip_of,
)
from _variants import LAYER_VARIANTS
from lstmcore import GRU, LSTM, Dense, Dropout, Embedding, LastStep, MeanPool, ModelFileError, Sequential
from lstmcore.nn.model_files import _archive
from lstmcore.nn.model_files import _format as _model_format
from lstmcore.nn.model_files import _header as _model_header


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    Sequential([LSTM(3, 4, seed=0), LastStep(), Dense(4, 2, seed=1)]).save(path)
    return path


def refused(path, message=None):
    """load(path) raises ModelFileError (matching ``message``) in well under a second,
    with a short message."""
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=message) as caught:
        lstmcore.load(path)
    assert time.perf_counter() - start < 1.0
    assert len(str(caught.value)) <= _model_format.MAX_MESSAGE
    return str(caught.value)


# ----------------------------------------------------------------------- the reproducers


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc"), reason="peak RSS in KiB: Linux")
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_fails_fast_in_little_memory(tmp_path, name):
    # Before load checked every claim first, these took seconds and gigabytes to fail or
    # printed a message of millions of characters, and one of them loaded.
    path = tmp_path / f"{name}.npz"
    HOSTILE[name](path)
    result = measure_load(path, timeout=120)
    assert result["outcome"] == "ModelFileError", result
    assert result["seconds"] < 1.0, result
    assert result["peak_growth_mb"] < 50 and result["traced_peak_mb"] < 25, result
    assert result["message_length"] <= _model_format.MAX_MESSAGE, result


def test_a_claim_of_200000_layers_names_what_is_missing_in_a_short_message(tmp_path):
    HOSTILE["num_layers_200000"](tmp_path / "deep.npz")
    message = refused(tmp_path / "deep.npz", r"missing \['0.bias_hh_l0_reverse'.*and perhaps more")
    assert len(message) < 400


def test_a_bomb_is_refused_before_any_member_is_read(tmp_path, monkeypatch):
    HOSTILE["member_claims_500m_floats"](tmp_path / "bomb.npz")

    def no_reading(*args, **kwargs):
        raise AssertionError("no member may be opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_reading)
    refused(tmp_path / "bomb.npz", r"claim 2000000\d+ bytes.*at most")


def test_the_expansion_limit_admits_compressed_model_files(tmp_path):
    model = Sequential([Embedding(50, 8, padding_idx=0, seed=0), GRU(8, 16, seed=1), MeanPool(), Dense(16, 3, seed=2)])
    arrays = {name: np.asarray(value) for name, value in model.params.items()}
    model.save(tmp_path / "plain.npz")
    arrays[_model_format.HEADER] = entries(tmp_path / "plain.npz")[_model_format.HEADER]
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    loaded = lstmcore.load(tmp_path / "compressed.npz")
    for name, value in model.params.items():
        assert np.array_equal(loaded.params[name], value)


# ----------------------------------------------------------------------- the header


def _header_change(saved, tmp_path, change):
    arrays = entries(saved)
    header = header_of(arrays)
    change(header)
    write_entries(tmp_path / "bad.npz", arrays, header)
    return tmp_path / "bad.npz"


def _config(index, **values):
    return lambda header: header["layers"][index]["config"].update(values)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda h: h.update(version=True), r"expected version 1 \(a JSON integer\), got True \(boolean\)"),
        (lambda h: h.update(version=1.0), r"expected version 1 \(a JSON integer\), got 1.0 \(number\)"),
        (lambda h: h.update(version="1"), r"got '1' \(string\)"),
        (lambda h: h.pop("version"), r"got None \(null\)"),
        (lambda h: h.update(format=["lstmcore-model"]), "expected format 'lstmcore-model'"),
        (lambda h: h.update(layers={}), "expected layers as a list of 1 to 1000 layers, got object"),
        (lambda h: h.update(layers=[]), "got 0 entries"),
        (lambda h: h.update(layers=h["layers"] * 400), "got 1200 entries"),
        (lambda h: h.update(extra=1), r"unexpected header keys \['extra'\]"),
        (lambda h: h.update(metadata=None), "expected metadata as a JSON object, got null"),
        (lambda h: h["layers"][0].update(name="x"), r'layer 0: expected \{"type"'),
        (lambda h: h["layers"].__setitem__(1, "LastStep"), r'layer 1: expected \{"type"'),
        (lambda h: h["layers"][0].update(type=5), "layer 0 has unknown type 5"),
        (lambda h: h["layers"][0].update(type="__import__"), "unknown type '__import__'"),
        (lambda h: h["layers"][0].update(config=[3, 4]), r"layer 0 \(LSTM\) has a bad config: expected an object"),
        (_config(0, hidden_size=True), r"expected hidden_size as an integer >= 1, got True \(boolean\)"),
        (_config(0, hidden_size=4.0), r"expected hidden_size as an integer >= 1, got 4.0 \(number\)"),
        (_config(0, hidden_size=0), "expected hidden_size as an integer >= 1, got 0"),
        (_config(0, num_layers=-1), "expected num_layers as an integer >= 1, got -1"),
        (_config(0, bidirectional="no"), r"expected bidirectional as a boolean, got 'no' \(string\)"),
        (_config(0, bidirectional=0), r"expected bidirectional as a boolean, got 0 \(integer\)"),
        (_config(0, dtype="float16"), 'expected dtype as "float32" or "float64", got \'float16\''),
        (_config(0, dtype=32), "expected dtype as"),
        (_config(0, seed="abc"), "expected seed as null, an integer or a list of integers"),
        (_config(0, seed=[1, True]), "expected seed as"),
        (_config(0, seed=-1), r"layer 0 \(LSTM\) has a bad config: .*negative"),
        (_config(0, dropout=True), r"expected dropout as a number, got True"),
        (_config(0, dropout=2), r"layer 0 \(LSTM\) has a bad config: expected dropout in \[0, 1\), got 2"),
        (_config(0, forget_bias="1"), "expected forget_bias as null or a number"),
        (_config(0, proj_size=4), r"missing \['0.weight_hr_l0'\]"),  # weights are compared first
        (_config(0, batch_first=False), "batch_first=True"),
        (
            _config(2, surprise=1),
            r"unexpected keys \['surprise'\] \(it takes in_features, out_features, activation, dtype, seed\)",
        ),
        (lambda h: h["layers"][2]["config"].pop("in_features"), r"missing keys \['in_features'\]"),
        (lambda h: h["layers"][1].update(config={"p": 0.5}), r"unexpected keys \['p'\] \(it takes bidirectional, reverse\)"),
    ],
)
def test_a_header_of_the_wrong_types_or_values_is_refused(saved, tmp_path, change, message):
    refused(_header_change(saved, tmp_path, change), message)


def _leaves(value, path=()):
    """(path, value) of every entry of a parsed header, containers included."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*path, key), child
        yield from _leaves(child, (*path, key))


CONFUSIONS = [True, False, 0, 1, -1, 1.0, 0.5, 2**63, "1", "true", "float32", None, [], {}, [1], {"a": 1}]


def test_every_value_of_another_json_type_is_refused_or_read_exactly(saved, tmp_path):
    original = header_of(entries(saved))
    arrays = entries(saved)
    for path, _ in _leaves(original):
        for value in CONFUSIONS:
            header = json.loads(json.dumps(original))
            container = header
            for key in path[:-1]:
                container = container[key]
            container[path[-1]] = value
            write_entries(tmp_path / "edited.npz", arrays, header)
            try:
                model = lstmcore.load(tmp_path / "edited.npz")
            except ModelFileError:
                continue
            assert type(header["version"]) is int and isinstance(header["format"], str), (path, value)
            for entry, built in zip(header["layers"], model.get_config()["layers"]):
                for key, given in entry["config"].items():  # read as given: no bool for a number
                    kept = built["config"][key]
                    assert kept == given and isinstance(kept, bool) == isinstance(given, bool), (path, value)


def test_a_config_of_the_right_types_loads_as_the_constructor_reads_it(saved, tmp_path):
    path = _header_change(saved, tmp_path, _config(0, dropout=0, seed=[1, 2]))
    assert lstmcore.load(path).layers[0].dropout == 0.0


def _raw_header(saved, tmp_path, text):
    arrays = entries(saved)
    write_entries(tmp_path / "bad.npz", arrays, text)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('"version": 1', '"version": 1, "version": 2'), "the key 'version' appears twice"),
        (lambda t: t.replace('"metadata": {}', '"metadata": {"x": NaN}'), "NaN is not JSON"),
        (lambda t: t.replace('"metadata": {}', '"metadata": {"x": -Infinity}'), "-Infinity is not JSON"),
        (lambda t: t.replace('"metadata": {}', '"metadata": {"x": 1e999}'), "'1e999' is not finite"),
        (lambda t: t.replace('"metadata": {}', '"metadata": {"x": ' + "9" * 5000 + "}"), "not valid JSON"),
        (lambda t: t.replace('"metadata": {}', '"metadata": {"x": ' + "[" * 65 + "]" * 65 + "}"), "nests 67 levels"),
        (lambda t: t.replace('"metadata": {}', '"metadata": ' + "[" * 50000 + "]" * 50000), "nests 50001 levels"),
        (lambda t: t[:-1], "not valid JSON"),
        (lambda t: t.encode("utf-8")[:-1] + b"\xff", "not UTF-8 text"),
        (lambda t: "[" + t + "]", "expected the header as a JSON object, got array"),
    ],
)
def test_a_header_that_is_not_plain_json_is_refused(saved, tmp_path, edit, message):
    text = json.dumps(header_of(entries(saved)))
    refused(_raw_header(saved, tmp_path, edit(text)), message)


def test_a_header_of_too_many_values_is_refused_before_it_is_parsed(saved, tmp_path, monkeypatch):
    def no_parsing(*args, **kwargs):
        raise AssertionError("the header must not be parsed")

    text = json.dumps(header_of(entries(saved))).replace('"metadata": {}', '"metadata": {"x": [' + "0," * 200_000 + "0]}")
    path = _raw_header(saved, tmp_path, text)
    monkeypatch.setattr(_model_header.json, "loads", no_parsing)
    refused(path, r"the header holds about 2000\d\d values; at most 200000 are read")


def test_brackets_inside_strings_are_not_nesting(saved, tmp_path):
    path = _header_change(saved, tmp_path, lambda h: h.update(metadata={"text": "[[[[{{{" * 100}))
    assert lstmcore.load(path).metadata["text"] == "[[[[{{{" * 100


def test_a_header_over_the_size_limit_is_refused_before_it_is_read(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(_model_format, "MAX_HEADER_BYTES", 1000)
    monkeypatch.setattr(_archive, "MAX_HEADER_BYTES", 1000)
    path = _header_change(saved, tmp_path, lambda h: h.update(metadata={"text": "x" * 2000}))
    refused(path, r"a header of \d+ bytes; at most 1000 are read")


def test_a_long_claim_is_quoted_short(saved, tmp_path):
    message = refused(_header_change(saved, tmp_path, lambda h: h["layers"][0].update(type="T" * 10**6)))
    assert "unknown type 'TTTT" in message and len(message) < 400


# ----------------------------------------------------------------------- the archive


def test_duplicate_members_are_refused(saved, tmp_path):
    raw = members(saved)
    with zipfile.ZipFile(tmp_path / "twice.npz", "w") as archive:
        for name, data in raw.items():
            archive.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("0.bias_ih_l0.npy", raw["0.bias_ih_l0.npy"])
    refused(tmp_path / "twice.npz", "member '0.bias_ih_l0.npy' appears twice")


def _rezipped(saved, path, change):
    """``saved`` rewritten by zip_of after ``change(name, (method, data, crc, size))``."""
    specs = {name: (zipfile.ZIP_STORED, data, zlib.crc32(data), len(data)) for name, data in members(saved).items()}
    zip_of({name: change(name, spec) for name, spec in specs.items()}, path)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda n, s: (zipfile.ZIP_BZIP2, *s[1:]), "expected compression stored or deflated, got method 12"),
        (lambda n, s: (zipfile.ZIP_STORED, s[1], s[2], s[3] + 10), r"stored, so expected its size \d+ bytes"),
        (lambda n, s: (zipfile.ZIP_STORED, s[1], s[2] ^ 1, s[3]), "cannot be read.*CRC"),
        (lambda n, s: deflated(s[1])[:2] + (s[2], s[3]) if n == HEADER_MEMBER else s, "."),  # stays valid
    ],
)
def test_members_of_other_methods_sizes_or_checksums_are_refused(saved, tmp_path, change, message):
    path = _rezipped(saved, tmp_path / "bad.npz", change)
    if message == ".":
        assert lstmcore.load(path).get_config() == lstmcore.load(saved).get_config()
    else:
        refused(path, message)


def test_a_zip_directory_over_the_limit_is_refused_before_zipfile_parses_it(tmp_path, monkeypatch):
    HOSTILE["sixty_thousand_members"](tmp_path / "many.npz")

    def no_parsing(*args, **kwargs):
        raise AssertionError("zipfile must not parse the directory")

    monkeypatch.setattr(zipfile.ZipFile, "__init__", no_parsing)
    refused(tmp_path / "many.npz", r"a zip directory of \d+ bytes; at most 2097152 are read")


def _zip64_saved(path, monkeypatch):
    """A small model saved with a ZIP64 end record (zipfile writes one past 65535 members)."""
    with monkeypatch.context() as patch:
        patch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
        Sequential([Dense(2, 1, seed=0)]).save(path)
    assert b"PK\x06\x06" in path.read_bytes()


def test_a_zip64_end_record_is_read_for_the_directory_size(tmp_path, monkeypatch):
    path = tmp_path / "zip64.npz"
    _zip64_saved(path, monkeypatch)
    assert np.array_equal(lstmcore.load(path).params["0.weight"], Dense(2, 1, seed=0).params["weight"])
    data = bytearray(path.read_bytes())
    record = data.rfind(b"PK\x06\x06")
    data[record + 40 : record + 48] = (10**9).to_bytes(8, "little")  # the directory's size, as zipfile reads it
    path.write_bytes(bytes(data))
    refused(path, "a zip directory of 1000000000 bytes")


def test_an_encrypted_member_is_refused(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    for start in (0, data.rfind(b"PK\x01\x02")):
        position = data.find(b"PK\x01\x02" if start else b"PK\x03\x04", start)
        flag_offset = position + (8 if start else 6)
        data[flag_offset] |= 1
    (tmp_path / "locked.npz").write_bytes(bytes(data))
    refused(tmp_path / "locked.npz", "is encrypted")


def test_a_member_past_the_end_of_the_file_is_refused(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 20 : central + 24] = (10**9).to_bytes(4, "little")  # compressed size
    data[central + 24 : central + 28] = (10**9).to_bytes(4, "little")  # size
    (tmp_path / "long.npz").write_bytes(bytes(data))
    refused(tmp_path / "long.npz", "past the end of the")


def test_overlapping_members_count_once_per_claim(saved, tmp_path):
    # many central-directory entries pointing at one deflated bomb: the claims add up
    bomb = deflated_zeros_after(b"", 2**26)
    specs = {HEADER_MEMBER: deflated(members(saved)[HEADER_MEMBER])}
    specs.update({f"copy{k}.npy": bomb for k in range(4)})
    zip_of(specs, tmp_path / "overlap.npz")
    refused(tmp_path / "overlap.npz", "(a zip bomb?)")


def _member_bytes(saved, tmp_path, name, data):
    raw = members(saved)
    raw[name] = data
    write_members(tmp_path / "bad.npz", raw)
    return tmp_path / "bad.npz"


def _npy_with_header(text, data=b""):
    encoded = text.encode("latin1")
    encoded += b" " * (-(10 + len(encoded) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(encoded).to_bytes(2, "little") + encoded + data


@pytest.mark.parametrize(
    "data, message",
    [
        (
            b"\x93NUMPY\x03\x00" + npy_bytes(np.zeros(4, np.float32))[8:],
            r"expected .npy format 1.0 or 2.0, got \(3, 0\)",
        ),
        (b"not an npy file", "cannot be read"),
        (b"\x93NUMPY\x01\x00\xff\xff" + b" " * 100, "cannot be read"),
        (_npy_with_header("-" * 9000 + "1"), "too complex to parse"),
        (_npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': \"\"\"abc}"), "cannot be read"),
        (
            _npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", bytes(12)),
            r"declares float32 \(4,\), 16 bytes, but the member holds 12",
        ),
        (
            _npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", bytes(20)),
            "the member holds 20",
        ),
        (
            _npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (4,), }", bytes(32)),
            "holds Python objects",
        ),
        (npy_bytes(np.zeros(4, ">f4")), r"expected weight '0.bias_ih_l0' as float32 \(16,\), got >f4 \(4,\)"),
        (npy_bytes(np.zeros((16, 10**2), np.float32)), r"as float32 \(16,\), got float32 \(16, 100\)"),
    ],
)
def test_a_member_whose_npy_header_lies_is_refused(saved, tmp_path, data, message):
    refused(_member_bytes(saved, tmp_path, "0.bias_ih_l0.npy", data), message)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(4, np.float32), r"expected the header as uint8 bytes \(n,\), got float32 \(4,\)"),
        (np.zeros((2, 2), np.uint8), r"got uint8 \(2, 2\)"),
    ],
)
def test_a_header_member_of_the_wrong_type_is_refused(saved, tmp_path, array, message):
    refused(_member_bytes(saved, tmp_path, HEADER_MEMBER, npy_bytes(array)), message)


def test_a_weight_in_fortran_order_is_read_in_its_order(saved, tmp_path):
    arrays = entries(saved)
    weight = np.asfortranarray(np.arange(16 * 3, dtype=np.float32).reshape(16, 3))
    path = _member_bytes(saved, tmp_path, "0.weight_ih_l0.npy", npy_bytes(weight))
    assert np.array_equal(lstmcore.load(path).params["0.weight_ih_l0"], weight)
    assert np.array_equal(lstmcore.load(path).params["0.weight_hh_l0"], arrays["0.weight_hh_l0"])


def test_a_member_outside_the_npy_naming_is_unexpected(saved, tmp_path):
    refused(_member_bytes(saved, tmp_path, "notes.txt", b"hello"), r"unexpected \['notes.txt'\]")


def test_what_is_not_a_regular_file_is_refused_or_an_os_error(tmp_path):
    if os.path.exists("/dev/zero"):
        refused("/dev/zero", "not a regular file")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.npz")
        refused(tmp_path / "pipe.npz", "not a regular file")  # not waiting for a writer
    with pytest.raises(IsADirectoryError if os.name != "nt" else PermissionError):
        lstmcore.load(tmp_path)


def test_a_hostile_file_through_the_command_line_is_a_one_line_error(tmp_path, capsys):
    from lstmcore.cli.main import main

    HOSTILE["hidden_size_6000"](tmp_path / "big.npz")
    assert (
        main(["generate", str(tmp_path / "big.npz")]) == 2
    )  # a user error: one line, exit status 2 (docs/reliability-python.md)
    err = capsys.readouterr().err
    assert "big.npz" in err and "expected weight '0.weight_ih_l0' as float32 (24000, 1)" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------- the layout


def _variant_layers():
    layers = [(cls, dict(options, input_size=3, hidden_size=5)) for cls, options in LAYER_VARIANTS.values()]
    layers += [
        (cls, dict(options, input_size=3, hidden_size=5, num_layers=2, bidirectional=True))
        for cls, options in LAYER_VARIANTS.values()
    ]
    layers += [
        (LSTM, {"input_size": 2, "hidden_size": 6, "num_layers": 3, "proj_size": 2, "bidirectional": True}),
        (LSTM, {"input_size": 2, "hidden_size": 4, "num_layers": 2, "layer_norm": True, "dtype": np.float64}),
        (GRU, {"input_size": 2, "hidden_size": 4, "dtype": np.float64}),
        (LSTM, {"input_size": 2, "hidden_size": 4, "num_layers": 2, "bidirectional": True, "bias": False}),
        (LSTM, {"input_size": 2, "hidden_size": 4, "proj_size": 2, "peephole": True, "bias": False, "reverse": True}),
        (GRU, {"input_size": 2, "hidden_size": 4, "bias": False, "reverse": True}),
        (Dense, {"in_features": 3, "out_features": 7}),
        (Embedding, {"num_embeddings": 9, "embedding_dim": 2, "dtype": np.float64}),
        (Dropout, {"p": 0.5}),
        (LastStep, {}),
        (MeanPool, {}),
    ]
    return layers


def _variant_layer_ids():
    """Names of _variant_layers' layers, in its order, led by the variant ids (tests/_variants.py)."""
    ids = [*LAYER_VARIANTS, *(f"{variant}-L2-bidir" for variant in LAYER_VARIANTS)]
    ids += ["projected-L3-bidir", "layer_norm-L2-float64", "gru-float64"]
    ids += ["lstm-no-bias-L2-bidir", "peephole_projected-no-bias-reverse", "gru-no-bias-reverse"]
    return ids + ["Dense", "Embedding", "Dropout", "LastStep", "MeanPool"]


@pytest.mark.parametrize("cls, options", _variant_layers(), ids=_variant_layer_ids())
def test_the_weights_a_header_implies_are_the_layers_own(cls, options):
    layer = cls(**options)
    config = json.loads(json.dumps(layer.get_config()))
    implied = {name: (shape, dtype) for name, shape, dtype in _model_header.expected_weights(cls.__name__, config)}
    assert implied == {name: (value.shape, value.dtype) for name, value in layer.params.items()}


@pytest.mark.parametrize("name", sorted(_model_header.LAYER_TYPES))
def test_every_constructor_argument_has_a_json_kind_and_every_config_key_is_one(name):
    taken, _ = _model_header.constructor_arguments(_model_header.LAYER_TYPES[name])
    assert [key for key in taken if key not in _model_header.KINDS] == []
    configs = [cls(**options).get_config() for cls, options in _variant_layers() if cls.__name__ == name]
    for config in configs:
        assert set(config) <= set(taken)
