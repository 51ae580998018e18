"""load on random damage (hypothesis, derandomized, 200 examples each): byte edits and
truncations of a saved file, edits of its JSON header as data and as text, and edits of
its members' .npy bytes under correct CRCs. Every outcome is a ModelFileError with a
short message, or a model holding exactly what the file holds; each within a second."""

import copy
import json
import time
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmcore
from _model_files import entries, header_of, members, write_entries, write_members
from lstmcore import LSTM, Dense, Embedding, LastStep, ModelFileError, Sequential
from lstmcore.nn.model_files import _format as _model_format
from lstmcore.nn.model_files import _header as _model_header

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)


def _model():
    layers = [
        Embedding(6, 3, padding_idx=0, seed=0),
        LSTM(3, 4, num_layers=2, bidirectional=True, peephole=True, seed=1),
        LastStep(),
        Dense(8, 2, seed=2),
    ]
    return Sequential(layers, metadata={"task": "fuzz", "classes": ["a", "b"], "scale": 0.5})


class Original:
    """A saved model file: its folder (for the fuzzed files), bytes, arrays, and the
    positions of its bytes that are structure rather than weight data."""

    def __init__(self, folder, raw, arrays, structure):
        self.folder, self.raw, self.arrays, self.structure = folder, raw, arrays, structure

    def __repr__(self):
        return f"Original({len(self.raw)} bytes)"


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "original.npz"
    _model().save(path)
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        central = min(len(data), data.find(b"PK\x01\x02"))
    # the bytes that are structure, not weight data: local headers with each .npy
    # header, and the central directory to the end
    structure = [index for info in infos for index in range(info.header_offset, info.header_offset + 200)]
    structure += list(range(central, len(data)))
    return Original(folder, data, entries(path), sorted({i for i in structure if i < len(data)}))


def _load(folder, write):
    """``lstmcore.load`` of the file ``write(path)`` makes: the model, or None after a
    short ModelFileError; within a second."""
    path = folder / "fuzzed.npz"
    write(path)
    start = time.perf_counter()
    try:
        model = lstmcore.load(path)
    except ModelFileError as error:
        assert len(str(error)) <= _model_format.MAX_MESSAGE  # noqa: PT017 (a helper of many tests, not a test)
        model = None
    assert time.perf_counter() - start < 1.0
    return model


def _holds(model, arrays):
    for name, value in arrays.items():
        if name != _model_format.HEADER:
            assert model.params[name].dtype == value.dtype and np.array_equal(model.params[name], value), name


# ----------------------------------------------------------------------- raw bytes


@FUZZ
@given(st.data())
def test_random_damage_to_the_files_bytes(original, data):
    folder, raw, arrays, structure = original.folder, original.raw, original.arrays, original.structure
    position = st.one_of(st.integers(0, len(raw) - 1), st.sampled_from(structure))
    edits = data.draw(st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=6))
    cut = data.draw(st.none() | st.integers(0, len(raw) - 1))
    damaged = bytearray(raw)
    for index, value in edits:
        damaged[index] = value
    damaged = bytes(damaged[:cut] if cut is not None else damaged)
    model = _load(folder, lambda path: path.write_bytes(damaged))
    if model is not None:  # the edits hit nothing read (a time stamp, a local CRC copy)
        _holds(model, arrays)
        assert model.get_config() == _model().get_config()


# ----------------------------------------------------------------------- the header

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)
# values one JSON type away from what a header holds
CONFUSIONS = [True, False, 0, 1, -1, 1.0, 0.5, 2**63, "1", "true", "float32", None, [], {}, [1], {"a": 1}]
json_values = st.sampled_from(CONFUSIONS) | json_values
_KEYS = st.sampled_from(sorted(_model_header.KINDS) + ["format", "version", "layers", "metadata", "type", "config"])


def _containers(value, path=()):
    """Paths to every list and object in a parsed header."""
    if isinstance(value, (dict, list)):
        yield path
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            yield from _containers(child, (*path, key))


def _at(header, path):
    for key in path:
        header = header[key]
    return header


@FUZZ
@given(st.data())
def test_random_edits_of_the_header(original, data):
    folder, arrays = original.folder, original.arrays
    header = copy.deepcopy(header_of(arrays))
    for _ in range(data.draw(st.integers(1, 3))):
        container = _at(header, data.draw(st.sampled_from(list(_containers(header)))))
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        action = data.draw(st.sampled_from(["replace", "delete", "add"] if keys else ["add"]))
        if action == "add":
            key = data.draw(_KEYS | st.text(max_size=8)) if isinstance(container, dict) else len(container)
            # copies: CONFUSIONS holds lists and objects that a later edit would change
            # for every test case after this one
            if isinstance(container, dict):
                container[key] = copy.deepcopy(data.draw(json_values))
            else:
                container.append(copy.deepcopy(data.draw(json_values)))
        elif action == "delete":
            del container[data.draw(st.sampled_from(keys))]
        else:
            container[data.draw(st.sampled_from(keys))] = copy.deepcopy(data.draw(json_values))
    model = _load(folder, lambda path: write_entries(path, arrays, header))
    if model is not None:  # an edit the format allows (a seed, a rate, the metadata)
        _holds(model, arrays)
        assert model.metadata == header.get("metadata", {})
        assert type(header["version"]) is int and header["version"] == 1 and header["format"] == "lstmcore-model"
        for entry, built in zip(header["layers"], model.get_config()["layers"]):
            assert entry["type"] == built["type"]
            for key, value in entry["config"].items():  # as given, and no bool taken for a number
                assert built["config"][key] == value and isinstance(built["config"][key], bool) == isinstance(value, bool)


_JSON_BYTES = st.sampled_from(list(b'{}[]",:0123456789.-+eE tfnrulas\\')) | st.integers(0, 255)


@FUZZ
@given(st.data())
def test_random_edits_of_the_header_text(original, data):
    folder, arrays = original.folder, original.arrays
    text = bytearray(json.dumps(header_of(arrays)).encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(text) - 1))
        kind = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if kind == "set":
            text[index] = data.draw(_JSON_BYTES)
        elif kind == "insert":
            text[index:index] = bytes([data.draw(_JSON_BYTES)]) * data.draw(st.integers(1, 200))
        else:
            del text[index : index + data.draw(st.integers(1, 20))]
    model = _load(folder, lambda path: write_entries(path, arrays, bytes(text)))
    if model is not None:
        _holds(model, arrays)


# ----------------------------------------------------------------------- the .npy members


@FUZZ
@given(st.data())
def test_random_edits_of_a_members_npy_bytes(original, data):
    folder, raw = original.folder, original.raw
    (folder / "members.npz").write_bytes(raw)
    parts = members(folder / "members.npz")
    name = data.draw(st.sampled_from(sorted(parts)))
    member = bytearray(parts[name])
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, min(len(member), 140) - 1))  # the .npy header, mostly
        member[index] = data.draw(st.sampled_from(list(b"(),: '<>|=0123456789fiuOTFalsrue")) | st.integers(0, 255))
    end = data.draw(st.none() | st.integers(0, len(member) + 16))  # cut, or zeros added
    if end is not None:
        member = member[:end] + bytes(max(0, end - len(member)))
    parts[name] = bytes(member)
    model = _load(folder, lambda path: write_members(path, parts))
    if model is not None:  # then NumPy reads the same numbers from it
        with np.load(folder / "fuzzed.npz", allow_pickle=False) as archive:
            _holds(model, {key: archive[key] for key in archive.files})


# ----------------------------------------------------------------------- the header scan


def _reference_structure(raw):
    """(depth, values) of JSON bytes, one byte at a time: the spec of _model_header.structure."""
    inside = escaped = False
    depth = deepest = 0
    values = 1
    for byte in raw:
        if inside:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                inside = False
        elif byte == ord('"'):
            inside = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            values += 2
        elif byte in b"]}":
            depth -= 1
        elif byte == ord(","):
            values += 1
    return deepest, values


_TRICKY = st.text(alphabet='\\"[]{},aé\U0001f600', max_size=12)


@FUZZ
@given(
    st.recursive(
        st.none() | st.integers() | _TRICKY,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(_TRICKY, children, max_size=4),
        max_leaves=20,
    ),
    st.booleans(),
    st.sampled_from([1, 2, 3, 5, 64, 2**18]),
)
def test_the_header_scan_counts_as_a_byte_by_byte_reading(value, ascii_only, chunk):
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    original_chunk = _model_header._SCAN_CHUNK
    _model_header._SCAN_CHUNK = chunk  # state carried across chunk boundaries too
    try:
        assert _model_header.structure(raw) == _reference_structure(raw)
    finally:
        _model_header._SCAN_CHUNK = original_chunk
