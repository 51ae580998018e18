"""Model files for tests: reading and rewriting archives and safetensors files, hostile
files, and the cost of loading one measured in a fresh process.

``python tests/_model_files.py`` prints the time, peak memory and outcome of loading
each hostile file (docs/model-files.md quotes the numbers).
"""

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np

from lstmcore import LSTM, Dense, Sequential
from lstmcore.nn.model_files import _format

HEADER_MEMBER = _format.HEADER + ".npy"


def entries(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def header_of(arrays):
    return json.loads(arrays[_format.HEADER].tobytes().decode("utf-8"))


def header_array(header):
    text = header if isinstance(header, (str, bytes)) else json.dumps(header)
    return np.frombuffer(text.encode("utf-8") if isinstance(text, str) else text, np.uint8)


def write_entries(path, arrays, header=None):
    if header is not None:
        arrays = dict(arrays)
        arrays[_format.HEADER] = header_array(header)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def members(path):
    """{member name: raw bytes (the .npy file)} of an archive."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_members(path, raw, compression=zipfile.ZIP_STORED):
    """An archive of ``raw`` ({name: bytes}) with correct CRCs, whatever the bytes."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in raw.items():
            archive.writestr(name, data)


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


# ----------------------------------------------------------------------- hostile files


def _tampered(path, change):
    """A small saved LSTM model whose header ``change`` edits."""
    Sequential([LSTM(1, 1, seed=0)]).save(path)
    arrays = entries(path)
    header = header_of(arrays)
    change(header)
    write_entries(path, arrays, header)


def hidden_size_6000(path):
    """A tiny model file whose header claims hidden_size 6000 (1.7 GB and 7 s before)."""
    _tampered(path, lambda header: header["layers"][0]["config"].update(hidden_size=6000))


def num_layers_200000(path):
    """A tiny model file whose header claims 200000 bidirectional layers (a minute and a
    message of millions of characters before)."""
    _tampered(path, lambda header: header["layers"][0]["config"].update(num_layers=200000, bidirectional=True))


def zip_of(members, path):
    """Writes a zip archive of ``members`` ({name: (method, compressed, crc, size)}) to
    ``path``, sizes and CRCs as given: the writer for bombs whose members zipfile would take
    seconds to compress."""
    local, central = io.BytesIO(), io.BytesIO()
    for name, (method, compressed, crc, size) in members.items():
        encoded = name.encode("utf-8")
        fields = (20, 0, method, 0, 33, crc, len(compressed), size, len(encoded))
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, 0, local.tell()))
        central.write(encoded)
        local.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + encoded + compressed)
    count = len(members)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, central.tell(), local.tell(), 0)
    with open(path, "wb") as file:
        file.write(local.getvalue() + central.getvalue() + end)


def deflated(data):
    """(method, compressed, crc, size) of ``data`` deflated."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return zipfile.ZIP_DEFLATED, compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data)


def deflated_zeros_after(prefix, count):
    """(method, compressed, crc, size) of ``prefix`` and ``count`` zero bytes, deflated in
    a fraction of a second: one fully flushed block of zeros repeated (each such block
    stands alone, so repeating its bytes is a valid stream)."""
    chunk = bytes(2**22)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeats, rest = divmod(count, len(chunk))
    tail = compressor.compress(bytes(rest)) + compressor.flush()
    crc = zlib.crc32(prefix)
    for _ in range(repeats):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(bytes(rest), crc)
    return zipfile.ZIP_DEFLATED, head + block * repeats + tail, crc, len(prefix) + count


def _npy_prefix(shape):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def member_claims_500m_floats(path):
    """A 2 MB archive whose weight member claims 500M float32 zeros, deflated (2 GB before)."""
    Sequential([Dense(2, 1, seed=0)]).save(path)
    arrays = entries(path)
    zip_of(
        {
            HEADER_MEMBER: deflated(npy_bytes(arrays[_format.HEADER])),
            "0.bias.npy": deflated(npy_bytes(arrays["0.bias"])),
            "0.weight.npy": deflated_zeros_after(_npy_prefix((500_000_000,)), 500_000_000 * 4),
        },
        path,
    )


def bomb_matching_its_header(path):
    """As member_claims_500m_floats, but the header's Dense layer claims the same 500M
    weights, so only the expansion limit stands between the file and 2 GB."""
    header = {
        "format": "lstmcore-model",
        "version": 1,
        "layers": [{"type": "Dense", "config": {"in_features": 500_000_000, "out_features": 1}}],
        "metadata": {},
    }
    zip_of(
        {
            HEADER_MEMBER: deflated(npy_bytes(header_array(header))),
            "0.bias.npy": deflated(npy_bytes(np.zeros(1, np.float32))),
            "0.weight.npy": deflated_zeros_after(_npy_prefix((1, 500_000_000)), 500_000_000 * 4),
        },
        path,
    )


def header_only_hidden_size_6000(path):
    """The user's 410-byte reproducer: a header alone, claiming an LSTM of hidden_size 6000."""
    header = {
        "format": "lstmcore-model",
        "version": 1,
        "layers": [{"type": "LSTM", "config": {"input_size": 1, "hidden_size": 6000}}],
        "metadata": {},
    }
    write_entries(path, {}, header)


def sixty_thousand_members(path):
    """A 4 MB archive of 60000 empty members: 60000 ZipInfo objects to make before."""
    zip_of({f"{index}.npy": (zipfile.ZIP_STORED, b"", 0, 0) for index in range(60_000)}, path)


def _with_metadata_text(path, text):
    """A saved Dense model whose header's metadata is the JSON ``text``."""
    Sequential([Dense(2, 1, seed=0)]).save(path)
    arrays = entries(path)
    header = json.dumps(header_of(arrays)).replace('"metadata": {}', '"metadata": ' + text)
    write_entries(path, arrays, header)


def header_of_a_million_lists(path):
    """A 3 MB header of a million empty lists in its metadata (a Python object each)."""
    _with_metadata_text(path, '{"x": [' + ",".join(["[]"] * 1_000_000) + "]}")


def header_nested_50000_deep(path):
    """A header whose metadata nests lists 50000 deep (RecursionError before)."""
    _with_metadata_text(path, "[" * 50_000 + "]" * 50_000)


HOSTILE = {
    "header_only_hidden_size_6000": header_only_hidden_size_6000,
    "hidden_size_6000": hidden_size_6000,
    "num_layers_200000": num_layers_200000,
    "member_claims_500m_floats": member_claims_500m_floats,
    "bomb_matching_its_header": bomb_matching_its_header,
    "sixty_thousand_members": sixty_thousand_members,
    "header_of_a_million_lists": header_of_a_million_lists,
    "header_nested_50000_deep": header_nested_50000_deep,
}

# ----------------------------------------------------------------------- safetensors files
# Written here byte by byte, without the safetensors library: the hostile ones are files no
# library would write, and none of them needs it installed.

_SAFETENSORS_DTYPES = {np.dtype(t): code for t, code in ((np.float32, "F32"), (np.float64, "F64"), (np.uint8, "U8"))}


def safetensors_parts(model, header=None, params=None):
    """(entries, data) of ``model`` as lstmcore writes it in safetensors: the JSON header's
    entries ({"__metadata__": {...}, name: {"dtype", "shape", "data_offsets"}}) and the data
    bytes. ``header`` (the lstmcore header, as an object) replaces the model's own, and
    ``params`` ({name: array}) its weights."""
    if header is None:
        header = {
            "format": "lstmcore-model",
            "version": 1,
            "layers": model.get_config()["layers"],
            "metadata": model.metadata,
        }
    entries = {"__metadata__": {_format.HEADER: json.dumps(header)}}
    data = bytearray()
    for name, value in (model.params if params is None else params).items():
        value = np.ascontiguousarray(value)
        entries[name] = {
            "dtype": _SAFETENSORS_DTYPES[value.dtype],
            "shape": list(value.shape),
            "data_offsets": [len(data), len(data) + value.nbytes],
        }
        data += value.tobytes()
    return entries, bytes(data)


def write_safetensors(path, entries, data=b"", length=None):
    """A safetensors file of the JSON header ``entries`` (an object, or its text as str or
    bytes) and ``data``; ``length`` replaces the header's true length in its first 8 bytes."""
    text = entries if isinstance(entries, (str, bytes)) else json.dumps(entries)
    text = text.encode("utf-8") if isinstance(text, str) else text
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text) if length is None else length) + text + data)


def read_safetensors(path):
    """(entries, data) of a safetensors file: its JSON header parsed, and the bytes after it."""
    with open(path, "rb") as file:
        raw = file.read()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def _lstm_with_header(path, change):
    model = Sequential([LSTM(1, 1, seed=0)])
    header = {"format": "lstmcore-model", "version": 1, "layers": model.get_config()["layers"], "metadata": {}}
    change(header["layers"][0]["config"])
    write_safetensors(path, *safetensors_parts(model, header))


def safetensors_hidden_size_6000(path):
    """A genuine LSTM(1, 1)'s tensors under a header claiming hidden_size 6000."""
    _lstm_with_header(path, lambda config: config.update(hidden_size=6000))


def safetensors_num_layers_200000(path):
    """A genuine LSTM(1, 1)'s tensors under a header claiming 200000 bidirectional layers."""
    _lstm_with_header(path, lambda config: config.update(num_layers=200000, bidirectional=True))


def safetensors_header_length_2_63(path):
    """16 bytes whose header length claims 2**63 bytes."""
    write_safetensors(path, b"{}", b"", length=2**63)


def safetensors_header_length_past_the_end(path):
    """A small file whose header length claims 8 MiB, under the limit but past its end."""
    write_safetensors(path, b"{}", bytes(100), length=8 * 2**20)


def safetensors_claims_500m_floats(path):
    """A Dense layer of 500M weights in the header and in the tensor entries (2 GB if
    believed), with 8 bytes of data."""
    header = {
        "format": "lstmcore-model",
        "version": 1,
        "layers": [{"type": "Dense", "config": {"in_features": 500_000_000, "out_features": 1}}],
        "metadata": {},
    }
    entries = {
        "__metadata__": {_format.HEADER: json.dumps(header)},
        "0.weight": {"dtype": "F32", "shape": [1, 500_000_000], "data_offsets": [0, 2_000_000_000]},
        "0.bias": {"dtype": "F32", "shape": [1], "data_offsets": [2_000_000_000, 2_000_000_004]},
    }
    write_safetensors(path, entries, bytes(8))


def safetensors_sixty_thousand_tensors(path):
    """60000 empty tensor entries (a 4 MB header)."""
    entries = {f"{index}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for index in range(60_000)}
    write_safetensors(path, entries)


def safetensors_a_million_lists(path):
    """A 3 MB header of a million empty lists (a tensor's shape)."""
    write_safetensors(
        path, '{"x": {"dtype": "F32", "shape": [' + ",".join(["[]"] * 1_000_000) + '], "data_offsets": [0, 0]}}'
    )


def safetensors_nested_50000_deep(path):
    """A header nesting lists 50000 deep."""
    write_safetensors(path, '{"x": ' + "[" * 50_000 + "]" * 50_000 + "}")


SAFETENSORS_HOSTILE = {
    "safetensors_hidden_size_6000": safetensors_hidden_size_6000,
    "safetensors_num_layers_200000": safetensors_num_layers_200000,
    "safetensors_header_length_2_63": safetensors_header_length_2_63,
    "safetensors_header_length_past_the_end": safetensors_header_length_past_the_end,
    "safetensors_claims_500m_floats": safetensors_claims_500m_floats,
    "safetensors_sixty_thousand_tensors": safetensors_sixty_thousand_tensors,
    "safetensors_a_million_lists": safetensors_a_million_lists,
    "safetensors_nested_50000_deep": safetensors_nested_50000_deep,
}

_MEASURE = """
import json, resource, sys, time, tracemalloc
import lstmcore

def load():
    try:
        lstmcore.load(sys.argv[1])
        return "loaded", ""
    except BaseException as error:
        return type(error).__name__, str(error)

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.process_time()  # the load's own CPU time: other processes on the cores do not count
outcome, message = load()
seconds = time.process_time() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
tracemalloc.start()
load()
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({"seconds": seconds, "peak_growth_mb": grown / 1024, "traced_peak_mb": traced / 2**20,
                  "outcome": outcome, "message": message[:300], "message_length": len(message)}))
"""


def measure_load(path, timeout=120):
    """{seconds (CPU time of the load), peak_growth_mb (peak RSS over the process's peak after import, Linux
    KiB units), traced_peak_mb (tracemalloc's peak in a second load: Python objects and
    NumPy arrays), outcome (the exception's type name or "loaded"), message,
    message_length} of ``lstmcore.load(path)`` in a fresh Python process."""
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, os.fspath(path)], check=False, capture_output=True, text=True, timeout=timeout
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'file':40} {'bytes':>9} {'seconds':>8} {'RSS MB':>7} {'traced MB':>9}  outcome (message length)")
        for name, make in [*HOSTILE.items(), *SAFETENSORS_HOSTILE.items()]:
            path = os.path.join(folder, name + (".safetensors" if name in SAFETENSORS_HOSTILE else ".npz"))
            make(path)
            result = measure_load(path, timeout=600)
            print(
                f"{name:40} {os.path.getsize(path):9d} {result['seconds']:8.3f} {result['peak_growth_mb']:7.1f} "
                f"{result['traced_peak_mb']:9.1f}  "
                f"{result['outcome']} ({result['message_length']}): {result['message'][:150]}"
            )
